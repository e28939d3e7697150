"""Training throughput of the same nets in the peers: DataLoader loop, skorch, Lightning, Keras.

The peers are optional (``pip install .[bench]``); each one that cannot be
imported is skipped with a message. Every candidate trains the CNN and the
MLP of :mod:`common` on the same preprocessed tensors for the same epochs,
with plain SGD at the same learning rate and a validation pass per epoch;
skorch and Lightning drive a copy of the very same ``net.module`` (through a
small adapter that feeds it the ``{'images': x}`` dict), Keras (torch
backend) the same architecture written in Keras layers. All are timed
interleaved with the hand-written loop (here without best-net keeping,
which no peer does by default) and with pydnn2 (which keeps the best net:
a test pass, a copy and a save when validation improves).

Ratios are samples/s of the candidate over the hand loop's (above 1 is faster).

Run: ``.venv/bin/python benchmarks/bench_peers.py [--quick]``
"""

import copy
import functools
import importlib
import logging
import os
import sys
import warnings

os.environ.setdefault('KERAS_BACKEND', 'torch')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn as tnn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import common  # noqa: E402
from common import fmt_rate, median, nn  # noqa: E402

WORKLOADS = {'CNN': (common.make_cnn, 6000, 1, 3), 'MLP': (common.make_mlp, 8000, 2, 3)}
QUICK = {'CNN': (1000, 1, 1), 'MLP': (2000, 1, 1)}


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
    """The preprocessed (x, y) of the training and validation sets, as plain tensors."""
    pre = net.preprocessor
    (x, y), (vx, vy) = pre.get_train(), pre.get_valid()
    return x['images'], y, vx['images'], vy


def dataloader_runner(net, epochs):
    """The loop many users write: DataLoader(TensorDataset) with shuffle, then validation."""
    x, y, vx, vy = tensors(net)
    initial, box = copy.deepcopy(net.module), {}

    def prepare():
        box['module'] = copy.deepcopy(initial)

    def run():
        module = box['module']
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
            common.hand_evaluate(module, {'images': vx}, vy, net.batch_size)

    return prepare, run


def skorch_runner(net, epochs):
    skorch = available('skorch')
    if skorch is None:
        return None
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    x, y, vx, vy = tensors(net)
    initial, box = copy.deepcopy(net.module), {}

    def prepare():
        box['net'] = skorch.NeuralNetClassifier(
            Adapter(copy.deepcopy(initial)), criterion=tnn.CrossEntropyLoss,
            optimizer=torch.optim.SGD, lr=common.LEARNING_RATE, batch_size=net.batch_size,
            max_epochs=epochs, train_split=predefined_split(Dataset(vx, vy)),
            iterator_train__shuffle=True, iterator_train__drop_last=True, device='cpu',
            verbose=0)

    return prepare, lambda: box['net'].fit(x, y)


def lightning_runner(net, epochs):
    L = available('lightning')
    if L is None:
        return None
    for name in ('lightning', 'lightning.pytorch', 'lightning.fabric'):
        logging.getLogger(name).setLevel(logging.ERROR)
    x, y, vx, vy = tensors(net)
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
            self.log('valid_loss', F.cross_entropy(self.module({'images': xb}), yb))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=common.LEARNING_RATE)

    def prepare():
        box['model'] = Model(copy.deepcopy(initial))
        box['trainer'] = L.Trainer(max_epochs=epochs, accelerator='cpu', devices=1,
                                   logger=False, enable_checkpointing=False,
                                   enable_progress_bar=False, enable_model_summary=False,
                                   num_sanity_val_steps=0)
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


def keras_runner(net, epochs):
    keras = available('keras')
    if keras is None:
        return None
    if keras.backend.backend() != 'torch':
        print(f'    keras skipped: its backend is {keras.backend.backend()!r}; set '
              'KERAS_BACKEND=torch', flush=True)
        return None
    x, y, vx, vy = (t.numpy() for t in tensors(net))
    box = {}

    def prepare():
        box['model'] = keras_model(keras, net)

    def run():
        box['model'].fit(x, y, batch_size=net.batch_size, epochs=epochs,
                         validation_data=(vx, vy), shuffle=True, verbose=0)

    return prepare, run


PEERS = {'DataLoader loop': dataloader_runner, 'skorch': skorch_runner,
         'Lightning': lightning_runner, 'Keras (torch)': keras_runner}


def measure(name, make, rows, epochs, rounds, warmup=1):
    """Interleaved timings of the hand loop, pydnn2 and each importable peer."""
    net, _ = make(rows)
    n = common.train_rows(net) * epochs
    candidates = {
        'hand': common.hand_runner(net, epochs, keep_best=False),
        'pydnn2': common.pydnn2_runner(
            net, lambda: nn.StochasticGradientDescent(common.LEARNING_RATE), epochs)}
    for peer, runner in PEERS.items():
        made = runner(net, epochs)
        if made is not None:
            candidates[peer] = made
    times = common.interleave(candidates, rounds, warmup)
    hand = n / median(times['hand'])
    print(f'{name} train, {epochs} epoch(s) x {n // epochs:,} rows, medians of {rounds} '
          f'interleaved runs: hand {fmt_rate(hand)} samples/s', flush=True)
    results = []
    for candidate, seconds in times.items():
        if candidate == 'hand':
            continue
        speed, ratio = n / median(seconds), common.paired_ratio(times['hand'], seconds)
        print(f'    {candidate:<16} {fmt_rate(speed):>8} samples/s, ratio {ratio:.2f}',
              flush=True)
        results.append(dict(bench='peers', workload=f'{name} train', candidate=candidate,
                            rate=speed, hand=hand, ratio=ratio, unit='samples/s',
                            rounds=rounds))
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
