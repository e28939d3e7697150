"""What the benchmarks share: the two nets, their data, a hand-written loop, timing.

The two workloads of issue 5:

* **CNN** on 1x28x28 synthetic images (12,000 rows of 10 class-dependent
  patterns plus noise): conv32 5x5 - pool 2x2 - conv64 5x5 - pool 2x2 - fc128 -
  dropout - fc10, batch 128, no batch norm. Compute-bound.
* **MLP** 64 -> 512 -> 512 -> 10 on scikit-learn's digits (flattened, tiled
  with a little noise to 16,000 rows), batch 64. Overhead-bound: a step is
  so short that framework work between the kernels decides.

The reference is :func:`hand_train`, the loop a PyTorch user would write for
the same epoch that ``net.train`` runs: it drives a copy of the very same
``net.module`` (same initial weights) on the same preprocessed tensors
(``pre.get_train()`` etc.), with the same optimizer type and
hyper-parameters, and does the same work per epoch: shuffled full batches,
loss and error counts accumulated on the device and read once, a validation
pass under ``torch.inference_mode()``, and, when the validation loss
improves, a test pass, a copy of the weights and a ``torch.save`` of them.

:func:`interleave` times several candidates A B A B ... and returns each
one's list of seconds; :func:`median` and :func:`paired_ratio` turn them
into the figures printed.
"""

import argparse
import atexit
import copy
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.evaluate import eval_batch_size

LEARNING_RATE = 0.01          # plain SGD for both loops (torch.optim.SGD underneath)
SPLIT = (80, 10, 10)          # train / valid / test percentages
SEED = 1234


def scratch_dir():
    """A new folder for a net's files (best nets), removed when the process exits."""
    path = tempfile.mkdtemp(prefix='pydnn2-bench-')
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# -- data ------------------------------------------------------------------------------

def cnn_data(rows=12000, seed=SEED):
    """Synthetic 1x28x28 images: per class a fixed random pattern, scaled, plus noise.

    Returns ``(x (rows, 1, 28, 28) float32, classes (rows,) int64)``.
    """
    rng = np.random.RandomState(seed)
    templates = rng.normal(size=(10, 1, 28, 28)).astype(np.float32)
    classes = rng.randint(0, 10, size=rows).astype(np.int64)
    scale = rng.uniform(0.3, 1.0, size=(rows, 1, 1, 1)).astype(np.float32)
    noise = rng.normal(size=(rows, 1, 28, 28)).astype(np.float32)
    return templates[classes] * scale + noise, classes


def mlp_data(rows=16000, seed=SEED):
    """scikit-learn's digits flattened to 64 features, tiled to ``rows`` with noise.

    Returns ``(x (rows, 64) float32, classes (rows,) int64)``.
    """
    images, classes, _ = data.load_digits()
    flat = images.reshape(len(images), -1)                    # (1797, 1, 8, 8) -> (1797, 64)
    rng = np.random.RandomState(seed)
    pick = rng.randint(0, len(flat), size=rows)
    x = flat[pick] + rng.normal(scale=0.5, size=(rows, 64)).astype(np.float32)
    return x.astype(np.float32), classes[pick]


# -- nets ------------------------------------------------------------------------------

def make_cnn(rows=12000, output_dir=None, filter_size=5):
    """The CNN of issue 5 on :func:`cnn_data`; returns ``(net, rule)``."""
    x, y = cnn_data(rows)
    sets = preprocess.split_training_data((x, y), 128, *SPLIT, rng=np.random.RandomState(0))
    pre = preprocess.ArrayPreprocessor(sets)
    net = nn.NN(pre, 'images', 10, 128, np.random.RandomState(SEED), name='bench_cnn',
                output_dir=output_dir or scratch_dir(),
                device='cpu', verbose=False)
    k = (filter_size, filter_size)
    net.add_conv_pool(32, k, (2, 2))
    net.add_nonlinearity(nn.relu)
    net.add_conv_pool(64, k, (2, 2))
    net.add_nonlinearity(nn.relu)
    net.add_fully_connected(128)
    net.add_nonlinearity(nn.relu)
    net.add_dropout(0.5)
    net.add_logistic()
    return net, nn.StochasticGradientDescent(LEARNING_RATE)


def make_mlp(rows=16000, output_dir=None):
    """The MLP 64 -> 512 -> 512 -> 10 on :func:`mlp_data`; returns ``(net, rule)``."""
    x, y = mlp_data(rows)
    sets = preprocess.split_training_data((x, y), 64, *SPLIT, rng=np.random.RandomState(0))
    pre = preprocess.ArrayPreprocessor(sets)
    net = nn.NN(pre, 'images', 10, 64, np.random.RandomState(SEED), name='bench_mlp',
                output_dir=output_dir or scratch_dir(),
                device='cpu', verbose=False)
    for _ in range(2):
        net.add_fully_connected(512)
        net.add_nonlinearity(nn.relu)
    net.add_logistic()
    return net, nn.StochasticGradientDescent(LEARNING_RATE)


def train_rows(net):
    """Rows trained per epoch: the full batches of the training set."""
    n = len(net.preprocessor.get_raw_y()[0])
    return n // net.batch_size * net.batch_size


# -- the hand-written reference --------------------------------------------------------

def hand_evaluate(module, x, y, batch_size):
    """(summed loss, error count) over a set, under inference_mode, read once."""
    module.eval()
    loss = torch.zeros(())
    errors = torch.zeros((), dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            logits = module({k: v[start:start + batch_size] for k, v in x.items()})
            target = y[start:start + batch_size]
            loss += F.cross_entropy(logits, target, reduction='sum')
            errors += (logits.argmax(1) != target).sum()
    return loss.item() / max(len(y), 1), errors.item() / max(len(y), 1)


def hand_train(module, pre, epochs, batch_size, learning_rate=LEARNING_RATE, seed=SEED,
               best_path=None, eval_batch=4096, timings=None, on_epoch=None, keep_best=True):
    """Train ``module`` as a PyTorch user would, doing the work of ``net.train``.

    Per epoch: shuffled full batches sliced from the training tensors, loss
    and errors summed on the device, validation under inference_mode; when
    the validation loss improves, the test set is evaluated and the weights
    copied and written with ``torch.save`` (to ``best_path``; skipped when
    None); ``keep_best=False`` leaves all that out. ``timings``, a dict,
    receives the seconds spent keeping the best net under ``'keep_best'``
    and how many times it was kept under ``'kept'``; ``on_epoch()`` is
    called after each epoch. Returns the per-epoch train losses.
    """
    x, y = pre.get_train()
    (vx, vy), (tx, ty) = pre.get_valid(), pre.get_test()
    optimizer = torch.optim.SGD(module.parameters(), lr=learning_rate, foreach=True)
    shuffle = torch.Generator().manual_seed(seed)
    steps = len(y) // batch_size
    best, losses = float('inf'), []
    for _ in range(epochs):
        module.train()
        order = torch.randperm(len(y), generator=shuffle)
        loss_sum = torch.zeros(())
        errors = torch.zeros((), dtype=torch.long)
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            target = y[index]
            logits = module({k: v[index] for k, v in x.items()})
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            errors += (logits.argmax(1) != target).sum()
        losses.append(loss_sum.item() / steps)
        _ = errors.item()
        valid_loss, _ = hand_evaluate(module, vx, vy, eval_batch)
        if keep_best and valid_loss < best:
            started = time.perf_counter()
            best = valid_loss
            hand_evaluate(module, tx, ty, eval_batch)
            state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            if best_path:
                torch.save(state, best_path)
            if timings is not None:
                timings['keep_best'] = timings.get('keep_best', 0.0) + \
                    time.perf_counter() - started
                timings['kept'] = timings.get('kept', 0) + 1
        if on_epoch is not None:
            on_epoch()
    return losses


def pydnn2_runner(net, rule_factory, epochs, **options):
    """``(prepare, run)``: reset ``net`` to its initial weights, then ``net.train``
    (with ``options``, e.g. ``channels_last=True``)."""
    initial = net.get_params()

    def prepare():
        net.set_params(initial)

    def run():
        return net.train(rule_factory(), epochs=epochs, verbose=False, progress=False,
                         **options)

    return prepare, run


def hand_runner(net, epochs, timings=None, keep_best=True, channels_last=False):
    """``(prepare, run)``: a fresh copy of ``net.module`` (initial weights), trained by hand.

    ``timings['keep_best']``, when a dict is given, gets each run's seconds of
    best-net keeping appended. ``channels_last`` puts the copy's weights in
    NHWC layout (``module.to(memory_format=torch.channels_last)``), so that
    convolutions and pooling produce NHWC feature maps.
    """
    initial = copy.deepcopy(net.module)
    if channels_last:
        initial.to(memory_format=torch.channels_last)
    best_path = os.path.join(net.output_dir, 'hand_best.pt')
    box = {}

    def prepare():
        box['module'] = copy.deepcopy(initial)

    def run():
        spent = {}
        losses = hand_train(box['module'], net.preprocessor, epochs, net.batch_size,
                            best_path=best_path, eval_batch=eval_batch_size(net),
                            timings=spent, keep_best=keep_best)
        if timings is not None:
            timings.setdefault('keep_best', []).append(spent.get('keep_best', 0.0))
        return losses

    return prepare, run


# -- timing ----------------------------------------------------------------------------

def interleave(candidates, rounds, warmup=1):
    """Time ``{name: (prepare, run)}`` in turn, A B A B ..., ``rounds`` times each.

    ``prepare`` runs untimed before each ``run``; ``warmup`` untimed rounds
    come first. Returns ``{name: [seconds, ...]}``.
    """
    times = {name: [] for name in candidates}
    for r in range(warmup + rounds):
        for name, (prepare, run) in candidates.items():
            prepare()
            gc.collect()
            started = time.perf_counter()
            run()
            elapsed = time.perf_counter() - started
            if r >= warmup:
                times[name].append(elapsed)
    return times


def median(values):
    """The median of a list of numbers."""
    return statistics.median(values)


def paired_ratio(reference, candidate):
    """Median over rounds of ``reference[i] / candidate[i]`` (seconds): the speed of the
    candidate relative to the reference, each round compared with its neighbour in time,
    so that a change of the machine's load between rounds cancels out."""
    return median([r / c for r, c in zip(reference, candidate)])


def spread(values):
    """Half the range around the median, as a fraction of it (how noisy a figure is)."""
    m = median(values)
    return (max(values) - min(values)) / (2 * m) if m else 0.0


def fmt_rate(value):
    """A rate with thousands separators: 2,480."""
    return f'{value:,.0f}'


def machine():
    """One line naming the machine and the software the figures come from."""
    return (f'{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, '
            f'torch {torch.__version__}, {torch.get_num_threads()} torch threads')


def load_average():
    """The 1-minute load average: above the core count, other work shares the CPU and
    every figure is noisier."""
    return os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')


def header(title):
    """Print a benchmark's title with the machine and its load."""
    print(f'== {title} ({machine()}; load average {load_average():.1f})', flush=True)


def write_json(path, results):
    """Write ``results`` (a list of dicts) to ``path`` for run_all's summary, if given."""
    if path:
        with open(path, 'w') as f:
            json.dump(results, f)


def parse_args(description, argv=None):
    """The options every benchmark script takes; applies ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--quick', action='store_true',
                        help='small data and few rounds: a smoke run, not a measurement')
    parser.add_argument('--rounds', type=int, default=None, help='interleaved rounds')
    parser.add_argument('--json', default=None, help='write the results to this file')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch threads (default: torch's own choice, one per core)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args
