"""Where pydnn2's training time goes, next to the hand-written loop's.

Not a benchmark: a tool for finding overhead. For one workload (the
overhead-bound MLP by default) it

1. counts the torch operators each loop dispatches per training step
   (``torch.profiler``), so any per-batch op the hand loop does not do shows
   up as a difference;
2. runs each loop under ``cProfile`` and prints the functions with the most
   time of their own, and the cumulative time of pydnn2's own functions.

Run: ``.venv/bin/python benchmarks/profile_train.py [--cnn] [--epochs N] [--top N]``
"""

import argparse
import cProfile
import collections
import pstats
import sys

from torch.profiler import ProfilerActivity, profile

import common
from common import nn


def op_counts(run, steps):
    """{operator: calls per training step} of ``run()``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    counts = collections.Counter()
    for event in prof.key_averages():
        counts[event.key] += event.count
    return {k: v / steps for k, v in counts.items()}


def print_op_difference(ours, hand):
    keys = sorted(set(ours) | set(hand), key=lambda k: -(ours.get(k, 0) - hand.get(k, 0)))
    print(f'{"operator":<44} {"pydnn2/step":>12} {"hand/step":>10}')
    shown = 0
    for key in keys:
        a, b = ours.get(key, 0.0), hand.get(key, 0.0)
        if abs(a - b) >= 0.01:
            print(f'{key:<44} {a:>12.2f} {b:>10.2f}')
            shown += 1
    if not shown:
        print('(no difference: both loops dispatch the same operators per step)')
    print(f'{"total operators per step":<44} {sum(ours.values()):>12.1f} '
          f'{sum(hand.values()):>10.1f}')


def profiled(run, top, restrict=None):
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler).sort_stats('tottime')
    stats.print_stats(top)
    if restrict:
        stats.sort_stats('cumulative').print_stats(restrict, top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cnn', action='store_true', help='profile the CNN instead of the MLP')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--top', type=int, default=15)
    args = parser.parse_args(argv)
    make, rows = (common.make_cnn, 3000) if args.cnn else (common.make_mlp, 16000)
    net, _ = make(rows)
    steps = common.train_rows(net) // net.batch_size * args.epochs
    prepare_ours, run_ours = common.pydnn2_runner(
        net, lambda: nn.StochasticGradientDescent(common.LEARNING_RATE), args.epochs)
    prepare_hand, run_hand = common.hand_runner(net, args.epochs)
    for prepare, run in ((prepare_ours, run_ours), (prepare_hand, run_hand)):   # warm up
        prepare()
        run()
    common.header(f'operators per training step ({steps} steps, validation included)')
    prepare_ours()
    ours = op_counts(run_ours, steps)
    prepare_hand()
    hand = op_counts(run_hand, steps)
    print_op_difference(ours, hand)
    print('\n== cProfile of net.train, by own time')
    prepare_ours()
    profiled(run_ours, args.top, restrict='pydnn2')
    print('\n== cProfile of the hand loop, by own time')
    prepare_hand()
    profiled(run_hand, args.top)


if __name__ == '__main__':
    main(sys.argv[1:])
