"""Tracking overhead: a digits CNN trained with a TensorBoardLogger or an MLflowLogger
against the same training without a logger.

The CNN of the README's first net (conv 32 3x3, conv 64 3x3 + 2x2 pool,
dropout, dense 256, dropout, logistic; batch 64, Adam, NCHW) on the digits
split 80/10/10. Each run is ``net.train(epochs=E)`` from the same initial
weights, interleaved none / TensorBoard / MLflow over rounds; the ratio is
the median over rounds of (seconds without a logger) / (seconds with it),
so 0.97 means the logger costs 3% of an epoch. Both loggers log every epoch
(flushing TensorBoard's file, one MLflow ``log_batch`` to a SQLite store)
and make their run at the start (counted: a run of E epochs pays it once);
the end figures and artifacts (``figures=False``, ``artifacts=False`` here)
are timed apart, once per run, and printed.

Run: ``.venv/bin/python benchmarks/bench_tracking.py [--quick]``
"""

import os
import sys
import time
import warnings

import numpy as np

import common
from common import median, nn, spread

from pydnn2 import data, preprocess
from pydnn2.track import MLflowLogger, TensorBoardLogger

EPOCHS, ROUNDS = 4, 5
QUICK = (1, 1)


def make_net(folder):
    """The digits CNN, writing its files to ``folder``."""
    rng = np.random.RandomState(common.SEED)
    sets = preprocess.split_training_data(data.load_digits(), 64, 80, 10, 10, rng=rng)
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 64, rng, name='tracked',
                output_dir=folder, verbose=False)
    net.add_convolution(32, (3, 3), (1, 1))
    net.add_convolution(64, (3, 3), (2, 2))
    net.add_dropout(0.25)
    net.add_hidden(256)
    net.add_dropout()
    net.add_logistic()
    return net


def runner(net, loggers, epochs):
    """``(prepare, run)``: the initial weights back, then ``train`` with ``loggers()``."""
    initial = net.get_params()

    def prepare():
        net.set_params(initial)

    def run():
        net.train(nn.Adam(0.003), epochs=epochs, progress=False, channels_last=False,
                  overwrite=True, callbacks=loggers())
    return prepare, run


def candidates(net, folder, epochs):
    """No logger, a TensorBoardLogger (a new folder per run) and an MLflowLogger."""
    uri = f'sqlite:///{os.path.join(folder, "mlflow.db")}'
    count = iter(range(10 ** 6))
    return {
        'none': runner(net, lambda: [], epochs),
        'TensorBoardLogger': runner(net, lambda: [TensorBoardLogger(
            os.path.join(folder, 'tb', str(next(count))), figures=False)], epochs),
        'MLflowLogger': runner(net, lambda: [MLflowLogger(uri, 'bench', artifacts=False)],
                               epochs),
    }


def end_costs(net, folder):
    """Seconds of each logger's end of training with its figures / artifacts (one epoch
    runs first, so that the net has a best file and a history)."""
    costs = {}
    uri = f'sqlite:///{os.path.join(folder, "mlflow.db")}'
    for name, logger in (('TensorBoardLogger', TensorBoardLogger(os.path.join(folder, 'end'))),
                         ('MLflowLogger', MLflowLogger(uri, 'bench-end'))):
        original = logger.on_train_end
        spent = {}

        def timed(net, logs, original=original, spent=spent):
            started = time.perf_counter()
            original(net, logs)
            spent['seconds'] = time.perf_counter() - started
        logger.on_train_end = timed
        net.train(nn.Adam(0.003), epochs=1, progress=False, channels_last=False,
                  overwrite=True, callbacks=[logger])
        costs[name] = spent['seconds']
    return costs


def main(argv=None):
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header('tracking overhead, a digits CNN with and without a logger')
    epochs, rounds = QUICK if args.quick else (EPOCHS, args.rounds or ROUNDS)
    warnings.filterwarnings('ignore', message='overwrite=True')   # (each run replaces the last)
    folder = common.scratch_dir()
    net = make_net(folder)
    times = common.interleave(candidates(net, folder, epochs), rounds)
    rows = common.train_rows(net) * epochs
    per_epoch = median(times['none']) / epochs
    results = []
    for name in ('TensorBoardLogger', 'MLflowLogger'):
        ratio = common.paired_ratio(times['none'], times[name])
        added = (median(times[name]) - median(times['none'])) / epochs
        results.append(dict(bench='tracking', workload=name, pydnn2=rows / median(times[name]),
                            hand=rows / median(times['none']), ratio=ratio, unit='samples/s',
                            rounds=rounds, epochs=epochs, seconds=times))
        print(f'{name}: ratio {ratio:.3f} to no logger ({100 * (1 / ratio - 1):+.1f}% per '
              f'epoch; {1000 * added:+.0f} ms of a {per_epoch:.2f} s epoch; spread '
              f'+-{100 * spread(times[name]):.0f}% / +-{100 * spread(times["none"]):.0f}%)',
              flush=True)
    for name, seconds in end_costs(net, folder).items():
        print(f'    {name} end of training with figures/artifacts: {seconds:.2f} s once per run',
              flush=True)
    common.write_json(args.json, results)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
