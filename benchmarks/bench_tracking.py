"""Tracking overhead: a digits CNN trained with a TensorBoardLogger or an MLflowLogger
against the same training without a logger.

The CNN of the README's first net (conv 32 3x3, conv 64 3x3 + 2x2 pool,
dropout, dense 256, dropout, logistic; batch 64, Adam, NCHW) on the digits
split 80/10/10. Each run is ``net.train(epochs=E)`` from the same initial
weights, interleaved none / TensorBoard / MLflow over rounds (one untimed
round first: imports, MLflow's tables). Two figures per logger:

- per epoch: the seconds its ``on_epoch_end`` takes (timed around the call:
  TensorBoard's scalars and flush, MLflow's ``log_batch`` to an SQLite
  store) against the seconds of an epoch without a logger (the history's
  ``seconds`` of the runs without one); the ratio ``epoch / (epoch + hook)``
  is what a logger leaves of the speed (0.97: it costs 3% of an epoch);
- per run: the whole ``train`` call against the run without a logger (the
  median over rounds of the paired ratios), which adds the start (client,
  experiment, run, params) and end of each run, once per run; the figures
  and artifacts at the end (``figures=False``, ``artifacts=False`` in the
  rounds) are timed apart and printed.

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
LOGGERS = ('TensorBoardLogger', 'MLflowLogger')


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


def timed(logger, hooks, spent):
    """``logger`` with each hook in ``hooks`` timed into ``spent[hook]`` (a list)."""
    for hook in hooks:
        original = getattr(logger, hook)

        def wrapper(net, logs, original=original, hook=hook):
            started = time.perf_counter()
            original(net, logs)
            spent.setdefault(hook, []).append(time.perf_counter() - started)
        setattr(logger, hook, wrapper)
    return logger


def runner(net, loggers, epochs, histories):
    """``(prepare, run)``: the initial weights back, then ``train`` with ``loggers()``;
    each run's history is appended to ``histories``."""
    initial = net.get_params()

    def prepare():
        net.set_params(initial)

    def run():
        histories.append(net.train(nn.Adam(0.003), epochs=epochs, progress=False,
                                   channels_last=False, overwrite=True, callbacks=loggers()))
    return prepare, run


def candidates(net, folder, epochs, spent, histories):
    """No logger, a TensorBoardLogger (a new folder per run) and an MLflowLogger, their
    hooks timed into ``spent[name]``."""
    uri = f'sqlite:///{os.path.join(folder, "mlflow.db")}'
    count = iter(range(10 ** 6))
    hooks = ('on_train_begin', 'on_epoch_end', 'on_train_end')
    make = {
        'TensorBoardLogger': lambda: TensorBoardLogger(
            os.path.join(folder, 'tb', str(next(count))), figures=False),
        'MLflowLogger': lambda: MLflowLogger(uri, 'bench', artifacts=False,
                                             artifact_location=os.path.join(folder, 'mlruns')),
    }
    result = {'none': runner(net, lambda: [], epochs, histories.setdefault('none', []))}
    for name in LOGGERS:
        log = spent.setdefault(name, {})
        result[name] = runner(net, lambda make=make[name], log=log: [timed(make(), hooks, log)],
                              epochs, histories.setdefault(name, []))
    return result


def end_costs(net, folder):
    """Seconds of each logger's end of training with its figures / artifacts (after one
    epoch, so that the net has a best file and a history)."""
    uri = f'sqlite:///{os.path.join(folder, "mlflow.db")}'
    loggers = {'TensorBoardLogger': TensorBoardLogger(os.path.join(folder, 'end')),
               'MLflowLogger': MLflowLogger(uri, 'bench-end',
                                            artifact_location=os.path.join(folder, 'mlruns'))}
    costs = {}
    for name, logger in loggers.items():
        spent = {}
        net.train(nn.Adam(0.003), epochs=1, progress=False, channels_last=False,
                  overwrite=True, callbacks=[timed(logger, ('on_train_end',), spent)])
        costs[name] = spent['on_train_end'][0]
    return costs


def report(name, times, spent, epoch, epochs, rounds, rows, warmup=1):
    """Print and return the figures of one logger."""
    per_epoch = median(spent['on_epoch_end'][warmup * epochs:])
    begin = median(spent['on_train_begin'][warmup:])
    ratio = epoch / (epoch + per_epoch)
    whole = common.paired_ratio(times['none'], times[name])
    print(f'{name}: {1000 * per_epoch:.1f} ms per epoch against a {epoch:.2f} s epoch: ratio '
          f'{ratio:.3f} ({100 * (1 / ratio - 1):.2f}% per epoch); {1000 * begin:.0f} ms to '
          f'start a run; whole runs of {epochs} epochs: ratio {whole:.3f} (spread '
          f'+-{100 * spread(times[name]):.0f}% / +-{100 * spread(times["none"]):.0f}%)',
          flush=True)
    return dict(bench='tracking', workload=name, pydnn2=rows / (epoch + per_epoch),
                hand=rows / epoch, ratio=ratio, ratio_whole_run=whole, unit='samples/s',
                hook_seconds=per_epoch, start_seconds=begin, rounds=rounds, epochs=epochs,
                seconds=times)


def main(argv=None):
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header('tracking overhead, a digits CNN with and without a logger')
    epochs, rounds = QUICK if args.quick else (EPOCHS, args.rounds or ROUNDS)
    warnings.filterwarnings('ignore', message='overwrite=True')   # (each run replaces the last)
    folder = common.scratch_dir()
    net = make_net(folder)
    spent, histories = {}, {}
    times = common.interleave(candidates(net, folder, epochs, spent, histories), rounds)
    epoch = median([s for h in histories['none'][1:] for s in h['seconds']])
    rows = common.train_rows(net)
    results = [report(name, times, spent[name], epoch, epochs, rounds, rows)
               for name in LOGGERS]
    for name, seconds in end_costs(net, folder).items():
        print(f'    {name} end of training with figures/artifacts: {seconds:.2f} s once per run',
              flush=True)
    common.write_json(args.json, results)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
