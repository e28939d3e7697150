"""Training throughput of the same nets in the peers: DataLoader loop, skorch, Lightning, Keras.

The peers are optional (``pip install .[bench]``); each one that cannot be
imported is skipped with a message. Every candidate trains the CNN and the
MLP of :mod:`common` on the same preprocessed tensors for the same epochs
and batch size, with plain SGD at the same learning rate and a validation
pass per epoch; skorch and Lightning drive a copy of the very same
``net.module`` (through a small adapter that feeds it the ``{'images': x}``
dict), Keras (torch backend) the same architecture written in Keras layers.

Each peer runs twice over (issue 12, "fair peers"):

* **plain**: training and validation only, against the hand-written loop
  without best-net keeping;
* **equal work**: also what pydnn2 does each epoch, keeping the best net:
  when the validation loss improves, a test pass and the best net written
  to a file, by each peer's own means (skorch's ``Checkpoint`` on
  ``valid_loss_best``, Lightning's ``ModelCheckpoint(monitor='val_loss',
  save_top_k=1)``, Keras's ``ModelCheckpoint(save_best_only=True)``, a
  ``torch.save`` of the weights in the two hand loops), against the hand
  loop with best-net keeping. pydnn2 always keeps its best net, so it runs
  only here.

All are timed interleaved, A B C ... A B C ..., and every equal-work run is
checked to have written its best-net file (the writes seen after each epoch,
and the file's time against the run's start): the check is printed.

Ratios are samples/s of the candidate over the hand loop's (above 1 is faster).

Run: ``.venv/bin/python benchmarks/bench_peers.py [--quick]``
"""

import copy
import functools
import importlib
import logging
import os
import shutil
import sys
import time
import warnings

os.environ.setdefault('KERAS_BACKEND', 'torch')

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn as tnn
from torch.utils.data import DataLoader, TensorDataset

import common
from common import fmt_rate, median, nn
from pydnn2.evaluate import eval_batch_size

# name: (make, rows, epochs, rounds); --quick: (rows, epochs, rounds)
WORKLOADS = {'CNN': (common.make_cnn, 6000, 1, 3), 'MLP': (common.make_mlp, 8000, 2, 3)}
QUICK = {'CNN': (2000, 1, 1), 'MLP': (2000, 1, 1)}   # (valid and test: one batch or more)
PLAIN, EQUAL = 'plain', 'equal work'


class Adapter(tnn.Module):
    """Feeds a pydnn2 module, whose forward takes a channel dict, from a plain tensor."""

    def __init__(self, module, channel='images'):
        super().__init__()
        self.module, self.channel = module, channel

    def forward(self, x):
        return self.module({self.channel: x})


@functools.lru_cache(maxsize=None)
def available(name):
    """The imported module, or None (saying so, once) when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - an optional peer may fail in any way
        print(f'    {name} skipped: cannot import it ({type(exc).__name__}: {exc}); '
              'pip install .[bench] to include it', flush=True)
        return None


def tensors(net):
    """The preprocessed training, validation and test sets: (x, y, vx, vy, tx, ty)."""
    pre = net.preprocessor
    (x, y), (vx, vy), (tx, ty) = pre.get_train(), pre.get_valid(), pre.get_test()
    return x['images'], y, vx['images'], vy, tx['images'], ty


def test_pass(module, tx, ty, batch_size):
    """The test pass pydnn2 makes at each new best: summed loss and errors under
    inference_mode (the hand loop's code); the module's mode is given back."""
    training = module.training
    common.hand_evaluate(module, {'images': tx}, ty, batch_size)
    module.train(training)


def weights_copy(module):
    """A copy of the weights, as the hand loop and pydnn2 take of their best net."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class BestFile:
    """Where one equal-work candidate writes its best net, and what each run did to it.

    ``reset()`` (untimed, before a run) deletes the file; ``poll()`` (after an
    epoch's saving) counts a write when the file changed since the last look;
    ``settle()`` (untimed, after the run) records the run: writes seen,
    validation improvements the candidate reported, the file's size and
    whether it was written during the run. ``polled=False`` for a candidate
    that writes in the background, whose writes cannot be seen per epoch.
    """

    def __init__(self, path, polled=True):
        self.path, self.polled = path, polled
        self.runs = []            # one dict per finished run
        self._run = None

    def reset(self):
        self.settle()
        if os.path.isdir(self.path):
            shutil.rmtree(self.path)
        elif os.path.exists(self.path):
            os.remove(self.path)
        self._run = dict(started=time.time_ns(), seen=None, writes=0, improved=0)

    def poll(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._run['seen']:
            self._run['seen'] = key
            self._run['writes'] += 1

    def improved(self, count=1):
        """The candidate's own count of validation improvements (best nets kept)."""
        self._run['improved'] += count

    def settle(self):
        run, self._run = self._run, None
        if run is None:
            return
        exists = os.path.exists(self.path)
        mtime = os.stat(self.path).st_mtime_ns if exists else 0
        self.runs.append(dict(writes=run['writes'] if self.polled else None,
                              improved=run['improved'], exists=exists,
                              size=os.path.getsize(self.path) if exists else 0,
                              fresh=exists and mtime >= run['started']))

    def summary(self):
        """One line: the writes and improvements of every run, and the file."""
        runs = self.runs
        writes = (f"writes seen per run [{', '.join(str(r['writes']) for r in runs)}]"
                  if self.polled else 'written in the background (not seen per epoch)')
        improved = ', '.join(str(r['improved']) for r in runs)
        fresh = sum(r['fresh'] for r in runs)
        ok = all(r['fresh'] and r['improved'] >= 1 and r['writes'] in (None, r['improved'])
                 for r in runs)
        return (f'{os.path.basename(self.path)}: {writes}, validation improvements '
                f'[{improved}], written during {fresh} of {len(runs)} runs, '
                f'{max((r["size"] for r in runs), default=0) / 1e6:.2f} MB: '
                + ('ok' if ok else 'NOT EQUAL WORK'))


def hand_runner(net, epochs, best):
    """The hand-written loop with best-net keeping, writing to ``best``."""
    initial, box = copy.deepcopy(net.module), {}

    def prepare():
        best.reset()
        box['module'] = copy.deepcopy(initial)

    def run():
        spent = {}
        common.hand_train(box['module'], net.preprocessor, epochs, net.batch_size,
                          best_path=best.path, eval_batch=eval_batch_size(net),
                          timings=spent, on_epoch=best.poll)
        best.improved(spent.get('kept', 0))

    return prepare, run


def pydnn2_runner(net, epochs, best):
    """``net.train``, which keeps its best net in ``<output_dir>/<name>_best_net.pt``
    from a background thread: its writes are not seen per epoch, only the file
    after the run; the improvements are the epochs with a test pass."""
    prepare_net, run_net = common.pydnn2_runner(
        net, lambda: nn.StochasticGradientDescent(common.LEARNING_RATE), epochs)

    def prepare():
        best.reset()
        prepare_net()

    def run():
        history = run_net()
        best.improved(sum(loss is not None for loss in history['test_loss']))

    return prepare, run


def dataloader_runner(net, epochs, best=None):
    """The loop many users write: DataLoader(TensorDataset) with shuffle, then
    validation; with ``best``, a test pass and a ``torch.save`` of the weights
    whenever the validation loss improves."""
    x, y, vx, vy, tx, ty = tensors(net)
    initial, box = copy.deepcopy(net.module), {}

    def prepare():
        if best is not None:
            best.reset()
        box['module'] = copy.deepcopy(initial)

    def run():
        module, lowest = box['module'], float('inf')
        optimizer = torch.optim.SGD(module.parameters(), lr=common.LEARNING_RATE)
        train = DataLoader(TensorDataset(x, y), batch_size=net.batch_size, shuffle=True,
                           drop_last=True)
        for _ in range(epochs):
            module.train()
            for xb, yb in train:
                loss = F.cross_entropy(module({'images': xb}), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            valid_loss, _ = common.hand_evaluate(module, {'images': vx}, vy, net.batch_size)
            if best is not None and valid_loss < lowest:
                lowest = valid_loss
                test_pass(module, tx, ty, net.batch_size)
                torch.save(weights_copy(module), best.path)
                best.improved()
                best.poll()

    return prepare, run


def skorch_runner(net, epochs, best=None):
    """skorch's NeuralNetClassifier on the same module; with ``best``, its
    ``Checkpoint`` on ``valid_loss_best`` (the weights only) and a test pass at
    each new best."""
    skorch = available('skorch')
    if skorch is None:
        return None
    from skorch.callbacks import Callback, Checkpoint
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    x, y, vx, vy, tx, ty = tensors(net)
    initial, box = copy.deepcopy(net.module), {}

    class TestAtBest(Callback):
        def on_epoch_end(self, model, **kwargs):
            if model.history[-1, 'valid_loss_best']:
                test_pass(model.module_.module, tx, ty, net.batch_size)
                best.improved()
            best.poll()

    def prepare():
        callbacks = []
        if best is not None:
            best.reset()
            folder, name = os.path.split(best.path)
            callbacks = [Checkpoint(monitor='valid_loss_best', dirname=folder, f_params=name,
                                    f_optimizer=None, f_criterion=None, f_history=None),
                         TestAtBest()]
        box['net'] = skorch.NeuralNetClassifier(
            Adapter(copy.deepcopy(initial)), criterion=tnn.CrossEntropyLoss,
            optimizer=torch.optim.SGD, lr=common.LEARNING_RATE, batch_size=net.batch_size,
            max_epochs=epochs, train_split=predefined_split(Dataset(vx, vy)),
            iterator_train__shuffle=True, iterator_train__drop_last=True, device='cpu',
            callbacks=callbacks, verbose=0)

    return prepare, lambda: box['net'].fit(x, y)


def lightning_runner(net, epochs, best=None):
    """Lightning on the same module; with ``best``, ``ModelCheckpoint(monitor='val_loss',
    save_top_k=1)`` and a test pass at each new best."""
    L = available('lightning')
    if L is None:
        return None
    for name in ('lightning', 'lightning.pytorch', 'lightning.fabric'):
        logging.getLogger(name).setLevel(logging.ERROR)
    x, y, vx, vy, tx, ty = tensors(net)
    initial, box = copy.deepcopy(net.module), {}

    class Model(L.LightningModule):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def training_step(self, batch, index):
            xb, yb = batch
            return F.cross_entropy(self.module({'images': xb}), yb)

        def validation_step(self, batch, index):
            xb, yb = batch
            self.log('val_loss', F.cross_entropy(self.module({'images': xb}), yb))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=common.LEARNING_RATE)

    class TestAtBest(L.Callback):
        lowest = float('inf')

        def on_validation_end(self, trainer, model):
            valid_loss = float(trainer.callback_metrics['val_loss'])
            if valid_loss < self.lowest:
                self.lowest = valid_loss
                test_pass(model.module, tx, ty, net.batch_size)
                best.improved()

        def on_train_epoch_start(self, trainer, model):
            best.poll()     # ModelCheckpoint saves at the end of the epoch, after this
                            # callback's on_train_epoch_end: the write shows here, or

        def on_fit_end(self, trainer, model):
            best.poll()     # here after the last epoch

    def prepare():
        callbacks = []
        if best is not None:
            best.reset()
            folder, name = os.path.split(best.path)
            callbacks = [L.pytorch.callbacks.ModelCheckpoint(
                dirpath=folder, filename=name[:-len('.ckpt')], monitor='val_loss',
                save_top_k=1), TestAtBest()]
        box['model'] = Model(copy.deepcopy(initial))
        box['trainer'] = L.Trainer(max_epochs=epochs, accelerator='cpu', devices=1,
                                   logger=False, enable_checkpointing=best is not None,
                                   callbacks=callbacks, enable_progress_bar=False,
                                   enable_model_summary=False, num_sanity_val_steps=0)
        box['train'] = DataLoader(TensorDataset(x, y), batch_size=net.batch_size,
                                  shuffle=True, drop_last=True)
        box['valid'] = DataLoader(TensorDataset(vx, vy), batch_size=net.batch_size)

    def run():
        box['trainer'].fit(box['model'], box['train'], box['valid'])

    return prepare, run


def keras_model(keras, net):
    """The same architecture in Keras layers (channels first, as the data is)."""
    L, cf = keras.layers, 'channels_first'
    shape = net.preprocessor.shape_for('images')
    if len(shape) == 3:
        layers = [L.Conv2D(32, 5, activation='relu', data_format=cf),
                  L.MaxPooling2D(2, data_format=cf),
                  L.Conv2D(64, 5, activation='relu', data_format=cf),
                  L.MaxPooling2D(2, data_format=cf), L.Flatten(),
                  L.Dense(128, activation='relu'), L.Dropout(0.5), L.Dense(10)]
    else:
        layers = [L.Dense(512, activation='relu'), L.Dense(512, activation='relu'),
                  L.Dense(10)]
    model = keras.Sequential([keras.Input(shape)] + layers)
    model.compile(optimizer=keras.optimizers.SGD(common.LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    return model


def keras_runner(net, epochs, best=None):
    """Keras 3 (torch backend) on the same architecture; with ``best``,
    ``ModelCheckpoint(save_best_only=True)`` (the whole model, ``.keras``) and
    ``model.evaluate`` on the test set at each new best."""
    keras = available('keras')
    if keras is None:
        return None
    if keras.backend.backend() != 'torch':
        print(f'    keras skipped: its backend is {keras.backend.backend()!r}; set '
              'KERAS_BACKEND=torch', flush=True)
        return None
    x, y, vx, vy, tx, ty = (t.numpy() for t in tensors(net))
    n = common.train_rows(net)      # the full batches the others train on (Keras would
    x, y, box = x[:n], y[:n], {}    # also train a last partial one)

    class TestAtBest(keras.callbacks.Callback):
        lowest = float('inf')

        def on_epoch_end(self, epoch, logs=None):
            if logs['val_loss'] < self.lowest:
                self.lowest = logs['val_loss']
                self.model.evaluate(tx, ty, batch_size=net.batch_size, verbose=0)
                best.improved()
            best.poll()             # (after ModelCheckpoint, which comes first)

    def prepare():
        box['callbacks'] = []
        if best is not None:
            best.reset()
            box['callbacks'] = [keras.callbacks.ModelCheckpoint(
                best.path, monitor='val_loss', save_best_only=True), TestAtBest()]
        box['model'] = keras_model(keras, net)

    def run():
        box['model'].fit(x, y, batch_size=net.batch_size, epochs=epochs,
                         validation_data=(vx, vy), shuffle=True, verbose=0,
                         callbacks=box['callbacks'])

    return prepare, run


# name: (runner, its best-net file's name); the runner takes (net, epochs, best=None)
PEERS = {'DataLoader loop': (dataloader_runner, 'dataloader_best.pt'),
         'skorch': (skorch_runner, 'skorch_best.pt'),
         'Lightning': (lightning_runner, 'lightning_best.ckpt'),
         'Keras (torch)': (keras_runner, 'keras_best.keras')}


def candidates(net, epochs):
    """``({(name, mode): (prepare, run)}, {name: BestFile})``: the hand loop plain
    and with equal work, pydnn2 (equal work), and each importable peer both ways."""
    folder = net.output_dir
    bests = {'hand': BestFile(os.path.join(folder, 'hand_best.pt')),
             'pydnn2': BestFile(os.path.join(folder, f'{net.name}_best_net.pt'),
                                polled=False)}
    runs = {('hand', PLAIN): common.hand_runner(net, epochs, keep_best=False),
            ('hand', EQUAL): hand_runner(net, epochs, bests['hand']),
            ('pydnn2', EQUAL): pydnn2_runner(net, epochs, bests['pydnn2'])}
    for peer, (runner, filename) in PEERS.items():
        plain = runner(net, epochs)
        if plain is None:
            continue
        bests[peer] = BestFile(os.path.join(folder, filename))
        runs[peer, PLAIN] = plain
        runs[peer, EQUAL] = runner(net, epochs, bests[peer])
    return runs, bests


def measure(name, make, rows, epochs, rounds, warmup=1):
    """Interleaved timings of every candidate; prints the table and the file checks."""
    net, _ = make(rows)
    n = common.train_rows(net) * epochs
    runs, bests = candidates(net, epochs)
    load = common.load_average()
    times = common.interleave(runs, rounds, warmup)
    for best in bests.values():
        best.settle()
    print(f'{name} train, {epochs} epoch(s) x {n // epochs:,} rows, batch {net.batch_size}, '
          f'medians of {rounds} interleaved rounds (load average {load:.1f} before, '
          f'{common.load_average():.1f} after):', flush=True)
    print(f'    {"":<16} {"plain samples/s":>16} {"ratio":>6} {"equal work samples/s":>21} '
          f'{"ratio":>6}', flush=True)
    results = []
    for candidate in dict.fromkeys(c for c, _ in runs):
        cells = []
        for mode, width in ((PLAIN, 16), (EQUAL, 21)):
            seconds = times.get((candidate, mode))
            if seconds is None:
                cells.append(f'{"-":>{width}} {"-":>6}')
                continue
            reference = times['hand', mode]
            speed, ratio = n / median(seconds), common.paired_ratio(reference, seconds)
            cells.append(f'{fmt_rate(speed):>{width}} {ratio:>6.2f}')
            if candidate != 'hand':          # (the reference, 1.00 by definition)
                results.append(dict(bench='peers', workload=f'{name} train',
                                    candidate=f'{candidate} ({mode})', rate=speed,
                                    hand=n / median(reference), ratio=ratio,
                                    unit='samples/s', rounds=rounds))
        print(f'    {candidate:<16} {" ".join(cells)}', flush=True)
    print('    best-net files of the equal-work runs (warm-up run included):', flush=True)
    for candidate, best in bests.items():
        print(f'      {candidate:<16} {best.summary()}', flush=True)
    return results


def main(argv=None):
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header('training throughput of the peers against the hand-written loop')
    warnings.filterwarnings('ignore')
    np.seterr(all='ignore')
    results = []
    for name, (make, rows, epochs, rounds) in WORKLOADS.items():
        if args.quick:
            rows, epochs, rounds = QUICK[name]
        results += measure(name, make, rows, epochs, args.rounds or rounds)
    common.write_json(args.json, results)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
