"""Child process of test_launcher.py: ``net.train(..., devices=2)`` seen from its caller.

Usage: python launcher_child.py SCENARIO OUTPUT_DIR RESULT [--marks FOLDER]

Each scenario trains distributed_child's digits MLP (name 'dp', global batch 32)
with ``devices=2`` in OUTPUT_DIR and writes what the caller saw to RESULT (JSON;
weights to RESULT.pt with torch.save):

- ``reference``: 3 epochs, a checkpoint every epoch; the final weights and history.
- ``interrupted``: the same, but rank 0 writes MARKS/held after batch 3 of epoch 2
  and waits until SIGINT reaches it (the test sends SIGINT to this process only, as
  a notebook's interrupt does, or to this process's group, as a terminal's Ctrl-C
  does); records what the caller got, then ``resume=True`` with ``devices=2`` in
  the same process and the final weights and history.
- ``again``: 2 epochs with ``devices=2``, then 1 epoch of a plain ``train`` of the
  same net, then 1 epoch with ``devices=2`` again; records each outcome.
- ``lock``: this net's lock held by a live process (the test's), then ``devices=2``.
- ``one_rank``: a callback raises a DataError at the end of epoch 1 on rank 1 only.

Every rank's pid is written to MARKS/rank<r>.<pid> when training starts, so the
test can kill them if this process overruns.
"""

import argparse
import json
import os
import signal
import socket
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train'))
import distributed_child

from pydnn2 import distributed
from pydnn2 import neuralnet as nn
from pydnn2.errors import DataError

WAIT = 120             # seconds rank 0 waits for the signal at most


class Marks(nn.Callback):
    """Writes each rank's pid into ``folder``; on rank 0, after batch ``batch`` of epoch
    ``epoch``, writes ``folder/held`` and waits until a SIGINT has reached this rank."""

    def __init__(self, folder, epoch=0, batch=0):
        self.folder, self.epoch, self.batch = folder, epoch, batch

    def on_train_begin(self, net, logs):
        rank = distributed.rank()
        with open(os.path.join(self.folder, f'rank{rank}.{os.getpid()}'), 'w'):
            pass

    def on_minibatch_end(self, net, logs):
        held = os.path.join(self.folder, 'held')
        if distributed.rank() != 0 or (logs['epoch'], logs['batch']) != (self.epoch, self.batch) \
                or os.path.exists(held):
            return
        handler, arrived = signal.getsignal(signal.SIGINT), []

        def noted(signum, frame):               # (train's own handler, and a note of it)
            arrived.append(signum)
            handler(signum, frame)
        signal.signal(signal.SIGINT, noted)
        with open(held + '.tmp', 'w') as f:
            f.write(str(os.getpid()))
        os.replace(held + '.tmp', held)
        deadline = time.monotonic() + WAIT
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.signal(signal.SIGINT, handler)


class FailOnRank1(nn.Callback):
    """Raises a DataError at the end of epoch 1 on rank 1 alone."""

    def on_epoch_end(self, net, logs):
        if distributed.rank() == 1:
            raise DataError('rank 1 found bad rows')


def fail_on_rank(rank):
    """For pydnn2.launch: a DataError on rank ``rank``; the other ranks return their rank."""
    if distributed.rank() == rank:
        raise DataError(f'rank {rank} refuses')
    return distributed.rank()


def train(net, marks, **options):
    """``net.train`` with ``devices=2`` (unless given), SGD, the child's usual options."""
    options = {'devices': 2, 'epochs': 3, 'checkpoint_every': 1, 'callbacks': [marks],
               **options}
    return net.train(nn.StochasticGradientDescent(0.1), progress=False,
                     eval_metric=nn.Accuracy(), **options)


def outcome(call):
    """``{'error': type name, 'message': ..., 'seconds': ...}`` of ``call()``."""
    started = time.monotonic()
    try:
        call()
        error = None
    except BaseException as exc:  # noqa: BLE001 - recorded for the test
        error = exc
    return {'error': type(error).__name__ if error else None,
            'message': str(error) if error else None,
            'cause': str(getattr(error, '__cause__', None) or ''),
            'seconds': time.monotonic() - started}


def children():
    """The pids of this process's live children."""
    found = []
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != b'Z':
            found.append(int(entry))
    return found


def interrupted(net, marks, output_dir):
    """Train until the signal; what the caller got; then the resumed run."""
    try:
        train(net, Marks(marks, epoch=2, batch=3))
        got = {'error': None}
    except nn.TrainingInterrupted as exc:
        best = torch.load(os.path.join(output_dir, 'dp_best_net.pt'), weights_only=True)
        got = {'error': 'TrainingInterrupted', 'checkpoint': exc.checkpoint,
               'signal': exc.signal, 'history_is_nets': exc.history is net.history,
               'epochs': list(net.history['epoch']),
               'weights_are_the_best_nets': all(torch.equal(v, best['weights'][k])
                                                for k, v in net.get_params().items())}
    got['lock'] = os.path.exists(os.path.join(output_dir, 'dp.lock'))
    got['children'] = children()
    got['resumed'] = outcome(lambda: train(net, Marks(marks), resume=True))
    return got


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('scenario')
    parser.add_argument('output_dir')
    parser.add_argument('result')
    parser.add_argument('--marks', default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = distributed_child.build(args.output_dir)
    marks = Marks(args.marks)
    if args.scenario == 'reference':
        train(net, marks)
        got = {}
    elif args.scenario == 'interrupted':
        got = interrupted(net, args.marks, args.output_dir)
    elif args.scenario == 'again':
        got = {'devices': outcome(lambda: train(net, marks, epochs=2)),
               'plain': outcome(lambda: train(net, marks, epochs=1, devices=None)),
               'devices_again': outcome(lambda: train(net, marks, epochs=1))}
    elif args.scenario == 'lock':
        with open(os.path.join(args.output_dir, 'dp.lock'), 'w') as f:
            json.dump({'pid': os.getppid(), 'host': socket.gethostname(), 'run': 'f' * 32}, f)
        got = outcome(lambda: train(net, marks))
    else:
        got = outcome(lambda: train(net, marks, callbacks=[marks, FailOnRank1()]))
    got['history'] = {k: v for k, v in net.history.items() if k != 'seconds'}
    got['files'] = sorted(os.listdir(args.output_dir))
    torch.save(net.get_params(), args.result + '.pt')
    with open(args.result, 'w') as f:
        json.dump(got, f)


if __name__ == '__main__':
    main()
