"""One process against two on this machine: data-parallel training with ``pydnn2.launch``.

A net big enough to gain from two processes if any would: an MLP 256 -> 1024
-> 1024 -> 10 on 8,192 synthetic rows (batch 256, plain SGD, no dropout),
trained for ``--epochs`` epochs

* in this process with 2 torch threads (torch's default here: one per core),
* in this process with 1 thread,
* in 2 processes of 1 thread each (``pydnn2.launch``, gloo; the global batch
  is still 256, each rank computing 128 rows of it),

interleaved over ``--rounds``. Each epoch's time is read from the history
(for 2 processes, the slower rank's); the first epoch is left out (warm-up),
and so is starting the processes, which is reported apart. The figure is
rows/s and the ratio to one process with 2 threads.

Run: ``.venv/bin/python benchmarks/bench_distributed.py [--quick]``
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pydnn2
from pydnn2 import neuralnet as nn
from pydnn2 import preprocess as pp

ROWS, FEATURES, HIDDEN, BATCH = 8192, 256, 1024, 256


def make_net(rows, output_dir):
    """The MLP on synthetic rows whose class is the argmax of a fixed projection."""
    rng = np.random.RandomState(0)
    x = rng.randn(rows, FEATURES).astype(np.float32)
    y = np.argmax(x @ rng.randn(FEATURES, 10), axis=1).astype(np.int64)
    sets = pp.split_training_data((x, y), BATCH, 80, 10, 10)
    net = nn.NN(pp.ArrayPreprocessor(sets), 'images', 10, BATCH, 0, name='mlp',
                output_dir=output_dir, verbose=False)
    net.add_hidden(HIDDEN, batch_normalize=False)
    net.add_hidden(HIDDEN, batch_normalize=False)
    net.add_logistic()
    return net


def train(threads, rows, epochs):
    """Train the net once with ``threads`` torch threads; the seconds of each epoch."""
    torch.set_num_threads(threads)
    net = make_net(rows, tempfile.mkdtemp(prefix='pydnn2-bench-dist-'))
    history = net.train(nn.StochasticGradientDescent(0.01), epochs=epochs, channels_last=False,
                        verbose=False)
    return list(history['seconds'])


def in_processes(rows, epochs):
    """Train in 2 launched processes of 1 thread; (seconds per epoch, wall seconds)."""
    started = time.perf_counter()
    seconds = pydnn2.launch(train, 1, rows, epochs, nprocs=2)
    return seconds, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='fewer rows and rounds')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    rows, rounds = (2048, 1) if args.quick else (ROWS, args.rounds)
    epochs = 2 if args.quick else args.epochs
    train_rows = len(make_net(rows, tempfile.mkdtemp()).preprocessor.get_train()[1])
    seconds = {'1 process, 2 threads': [], '1 process, 1 thread': [],
               '2 processes, 1 thread each': []}
    overhead = []
    for _ in range(rounds):
        seconds['1 process, 2 threads'] += train(2, rows, epochs)[1:]
        seconds['1 process, 1 thread'] += train(1, rows, epochs)[1:]
        per_epoch, wall = in_processes(rows, epochs)
        seconds['2 processes, 1 thread each'] += per_epoch[1:]
        overhead.append(wall - sum(per_epoch))
    base = statistics.median(seconds['1 process, 2 threads'])
    results = []
    print(f'{train_rows} training rows, batch {BATCH}, {epochs} epochs x {rounds} rounds; '
          f'load average {os.getloadavg()[0]:.1f}')
    for name, values in seconds.items():
        epoch = statistics.median(values)
        results.append({'candidate': name, 'epoch_seconds': epoch,
                        'rows_per_s': train_rows / epoch, 'ratio': base / epoch})
        print(f'{name:28s} {epoch:6.2f} s/epoch  {train_rows / epoch:8.0f} rows/s  '
              f'ratio {base / epoch:.2f}')
    print(f'starting and joining the 2 processes: {statistics.median(overhead):.1f} s a run')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
