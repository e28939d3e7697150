"""Child process of test_distributed.py: trains a digits MLP, alone or as one rank of torchrun.

Usage: python distributed_child.py OUTPUT_DIR RESULT [--epochs N] [--resume PATH|auto]
                                   [--slow SECONDS] [--pids FOLDER] [--devices N]
                                   [--checkpoint-every N] [--hold RANK:EPOCH:FOLDER]
                                   [--pause RANK:EPOCH.BATCH:BEACON] [--stop RANK:EPOCH:HOOK]

The same script runs in one process (``python distributed_child.py ...``) and
under ``torchrun``: nothing in it names a rank except what it records. Trains
SGD without dropout, with the validation accuracy as a metric, writing a
checkpoint every epoch (or every ``--checkpoint-every``) into OUTPUT_DIR. Every
rank writes RESULT.rank<r>.json: its history, what it printed, and every file
it opened for writing while training (``open``, ``os.open`` and
``pydnn2.files.atomic_write`` are watched). Rank 0 saves the final weights to
RESULT with torch.save; when a signal stops training (TrainingInterrupted)
each rank records the checkpoint's path instead and exits with INTERRUPTED.
``--slow`` sleeps after each batch; ``--pause`` makes rank RANK (of the
first start, not of a restart) write the file BEACON after batch BATCH of
epoch EPOCH and wait there for a signal, so that a test's signal lands at
that very batch; ``--pids`` writes each rank's pid to FOLDER/rank<r>.<restart>
(outside OUTPUT_DIR) when training starts. ``--devices N`` trains with
``net.train(..., devices=N)``: N processes that this one starts itself.
``--hold RANK:EPOCH:FOLDER`` makes rank RANK of the first attempt (torchrun's
restart 0) write FOLDER/held when EPOCH begins and then wait for signals, so a
test can kill it in that epoch without timing anything.
``--stop RANK:EPOCH:HOOK`` makes rank RANK alone raise in EPOCH: StopTraining from
``on_epoch_begin`` (HOOK ``epoch_begin``) or from its third batch's
``on_minibatch_end`` (``batch``), or a ValueError there (``error``).
"""

import argparse
import builtins
import contextlib
import io
import json
import os
import signal
import sys
import tempfile
import time

import numpy as np
import torch

from pydnn2 import data, distributed, files, preprocess
from pydnn2 import neuralnet as nn
from pause import PauseAt

INTERRUPTED = 3           # the exit status after a signal stopped training
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Slow(nn.Callback):
    """Sleeps after each batch, so the parent's kill lands while training runs."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_minibatch_end(self, net, logs):
        time.sleep(self.seconds)


class Hold(nn.Callback):
    """When ``epoch`` begins, writes ``<folder>/held`` and waits until killed."""

    def __init__(self, epoch, folder):
        self.epoch, self.folder = epoch, folder

    def on_epoch_begin(self, net, logs):
        if logs['epoch'] == self.epoch:
            with open(os.path.join(self.folder, 'held.tmp'), 'w') as f:
                f.write(str(os.getpid()))
            os.replace(os.path.join(self.folder, 'held.tmp'), os.path.join(self.folder, 'held'))
            while True:
                signal.pause()


class StopOn(nn.Callback):
    """Raises in ``epoch`` on this rank alone: see ``--stop``."""

    def __init__(self, epoch, hook):
        self.epoch, self.hook = epoch, hook

    def on_epoch_begin(self, net, logs):
        if logs['epoch'] == self.epoch and self.hook == 'epoch_begin':
            raise nn.StopTraining(f'asked on rank {distributed.rank()} in on_epoch_begin')

    def on_minibatch_end(self, net, logs):
        if logs['epoch'] != self.epoch or logs['batch'] != 3:
            return
        if self.hook == 'batch':
            raise nn.StopTraining(f'asked on rank {distributed.rank()} in a batch hook')
        if self.hook == 'error':
            raise ValueError(f'a callback failed on rank {distributed.rank()}')


def stop_on(spec):
    """The ``StopOn`` callback ``--stop RANK:EPOCH:HOOK`` asks of this process, or None."""
    if spec is None:
        return None
    rank, epoch, hook = spec.split(':')
    return StopOn(int(epoch), hook) if distributed.rank() == int(rank) else None


def hold(spec):
    """The ``Hold`` callback ``--hold RANK:EPOCH:FOLDER`` asks of this process, or None."""
    if spec is None:
        return None
    rank, epoch, folder = spec.split(':', 2)
    restart = (distributed.environment() or {}).get('restart_count', 0)
    if restart or distributed.rank() != int(rank):
        return None
    return Hold(int(epoch), folder)


def pause_callbacks(spec, rank, restart):
    """``[PauseAt(...)]`` for ``--pause RANK:EPOCH.BATCH:BEACON`` on that rank's first
    start, else ``[]``."""
    if not spec:
        return []
    which, point, beacon = spec.split(':', 2)
    if int(which) != rank or restart:
        return []
    epoch, batch = map(int, point.split('.'))
    return [PauseAt(epoch, batch, beacon)]


@contextlib.contextmanager
def watched_writes(written):
    """Append to ``written`` the path of every file opened for writing in the block."""
    real_open, real_os_open, real_atomic = builtins.open, os.open, files.atomic_write

    def spy_open(file, mode='r', *args, **kwargs):
        if any(c in mode for c in 'wax+') and not isinstance(file, int):
            written.append(os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    def spy_os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            written.append(os.fspath(path))
        return real_os_open(path, flags, *args, **kwargs)

    def spy_atomic(path, write):
        written.append(f'atomic_write:{os.fspath(path)}')
        return real_atomic(path, write)

    builtins.open, os.open, files.atomic_write = spy_open, spy_os_open, spy_atomic
    try:
        yield
    finally:
        builtins.open, os.open, files.atomic_write = real_open, real_os_open, real_atomic


def ranks_seen(offset):
    """For pydnn2.launch: every rank's rank plus ``offset``, gathered (on rank 0, returned)."""
    distributed.init('cpu')
    return distributed.all_gather_objects(distributed.rank() + offset)


def dropout_draws(output_dir):
    """For pydnn2.launch: what each rank's training session draws first from torch's
    global generator (dropout's), gathered on rank 0."""
    from pydnn2.train import DataParallel, TrainConfig, Trainer
    distributed.init('cpu')
    net = build(output_dir)
    trainer = Trainer(net, nn.StochasticGradientDescent(0.1), TrainConfig(),
                      strategy=DataParallel())
    draws = torch.rand(4).tolist()
    trainer.close()
    return distributed.all_gather_objects(draws)


def build(output_dir):
    """The digits MLP: 64 inputs, 32 hidden relu units (no batch norm, whose statistics
    would be each rank's), 10 classes; global batch 32."""
    sets = preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(3))
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32, np.random.RandomState(5),
                name='dp', output_dir=output_dir, verbose=False)
    net.add_hidden(32, batch_normalize=False)
    net.add_logistic()
    return net


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('output_dir')
    parser.add_argument('result')
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--resume', default=None)
    parser.add_argument('--slow', type=float, default=0)
    parser.add_argument('--pids', default=None)
    parser.add_argument('--devices', type=int, default=None)
    parser.add_argument('--checkpoint-every', type=int, default=1)
    parser.add_argument('--hold', default=None)
    parser.add_argument('--pause', default=None)
    parser.add_argument('--stop', default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tempfile.gettempdir()         # (torch probes it with a write on first use: not ours)
    rank = distributed.rank()
    restart = (distributed.environment() or {}).get('restart_count', 0)
    if args.pids:
        with open(os.path.join(args.pids, f'rank{rank}.{restart}'), 'w') as f:
            f.write(str(os.getpid()))
    net = build(args.output_dir)
    written, printed = [], io.StringIO()
    callbacks = ([Slow(args.slow)] if args.slow else []) + pause_callbacks(args.pause, rank,
                                                                           restart)
    callbacks += [c for c in [hold(args.hold), stop_on(args.stop)] if c is not None]
    interrupted = None
    with watched_writes(written), contextlib.redirect_stdout(printed), \
            contextlib.redirect_stderr(printed):
        try:
            history = net.train(nn.StochasticGradientDescent(0.1), epochs=args.epochs,
                                checkpoint_every=args.checkpoint_every, verbose=True,
                                progress=False, resume=args.resume, callbacks=callbacks,
                                eval_metric=nn.Accuracy(), devices=args.devices)
        except nn.TrainingInterrupted as exc:
            history, interrupted = exc.history, exc.checkpoint
    if distributed.is_writer() and not interrupted:
        torch.save(net.module.state_dict(), args.result)
    with open(f'{args.result}.rank{rank}.json', 'w') as f:
        json.dump({'history': dict(history), 'printed': printed.getvalue(), 'written': written,
                   'world_size': distributed.world_size(), 'interrupted': interrupted}, f)
    if interrupted:
        sys.exit(INTERRUPTED)

if __name__ == '__main__':
    main()
