"""Training throughput: ``net.train`` against a hand-written PyTorch loop.

For the CNN (batch 128) and the MLP (batch 64) of :mod:`common`, times
``net.train(rule, epochs=k, verbose=False, progress=False)`` and
:func:`common.hand_train` on a copy of the same module with the same initial
weights, interleaved A B A B ..., and prints the median samples/s of each
and the ratio pydnn2 / hand (above 1 means pydnn2 is faster): the median of
each round's ratio, so that a change of load between rounds cancels out.

The CNN line pins NCHW (``channels_last=False``), as the hand loop runs; a
third line trains it with ``channels_last=True`` (NHWC feature maps) against
the hand loop on a channels-last copy of the module, and compares both with
NCHW. The fourth, ``CNN auto layout``, is the CNN as ``net.train`` runs it
by default (``channels_last=None``: the layout chosen by timing a few steps
of each, once per net) against pydnn2 pinned to NCHW and against the NCHW
hand loop, the three interleaved; it also times the choice itself. The fifth,
``CNN bf16``, trains with ``amp='bf16'`` (bf16 autocast, channels-last) against
the fp32 NCHW hand loop: the speed a CPU with AMX (or a recent GPU) gains; where
bf16 is emulated it is slower, and ``amp='auto'`` would not take it.

Run: ``.venv/bin/python benchmarks/bench_train.py [--quick]``
"""

import sys
import time

import common
from common import fmt_rate, median, nn, spread

from pydnn2.model import layout

AUTO = 'CNN auto layout'
BF16 = 'CNN bf16'
# name: (factory, rows, epochs per timed run, rounds, options); QUICK overrides rows..rounds
WORKLOADS = {
    'CNN': (common.make_cnn, 12000, 1, 5, {'channels_last': False}),
    'MLP': (common.make_mlp, 16000, 3, 5, {}),
    'CNN channels_last': (common.make_cnn, 12000, 1, 3, {'channels_last': True}),
    AUTO: (common.make_cnn, 12000, 1, 5, {}),
    BF16: (common.make_cnn, 12000, 1, 5, {'amp': 'bf16', 'channels_last': True}),
}
QUICK = {'CNN': (1000, 1, 1), 'MLP': (2000, 1, 1), 'CNN channels_last': (1000, 1, 1),
         AUTO: (1000, 1, 1), BF16: (1000, 1, 1)}


def rule():
    """A fresh learning rule for each run (an annealer belongs to one rule)."""
    return nn.StochasticGradientDescent(common.LEARNING_RATE)


def measure(name, make, rows, epochs, rounds, options, warmup=1):
    """Interleaved timings of both loops on one workload; returns a result dict."""
    net, _ = make(rows)
    n = common.train_rows(net) * epochs
    hand_timings = {}
    times = common.interleave({
        'pydnn2': common.pydnn2_runner(net, rule, epochs, **options),
        'hand': common.hand_runner(net, epochs, hand_timings, **options),
    }, rounds, warmup)
    ours, hand = n / median(times['pydnn2']), n / median(times['hand'])
    ratio = common.paired_ratio(times['hand'], times['pydnn2'])
    keep_best = median(hand_timings['keep_best'][warmup:]) / median(times['hand'])
    result = dict(bench='train', workload=name, pydnn2=ours, hand=hand, ratio=ratio,
                  unit='samples/s', rounds=rounds, epochs=epochs, rows=n // epochs,
                  spread_pydnn2=spread(times['pydnn2']), spread_hand=spread(times['hand']),
                  keep_best_share=keep_best, seconds=times)
    print(f'{name} train: pydnn2 {fmt_rate(ours)} samples/s, hand {fmt_rate(hand)} samples/s, '
          f'ratio {ratio:.2f}', flush=True)
    spreads = f'+-{100 * spread(times["pydnn2"]):.0f}% / +-{100 * spread(times["hand"]):.0f}%'
    print(f'    medians of {rounds} interleaved runs of {epochs} epoch(s) x {n // epochs:,} rows '
          f'(spread {spreads}); best-net keeping (test pass, copy, save) is '
          f'{100 * keep_best:.1f}% of the hand loop\'s time', flush=True)
    return result


def measure_auto(name, make, rows, epochs, rounds, options, warmup=1):
    """The default CNN run (layout chosen by measurement) against pydnn2 pinned to NCHW
    and the NCHW hand loop, interleaved; returns a result dict."""
    net, _ = make(rows)
    pinned, _ = make(rows)
    n = common.train_rows(net) * epochs
    started = time.perf_counter()
    chosen = layout.measure(net)       # what the first train() of a fresh net spends choosing
    choosing = time.perf_counter() - started
    times = common.interleave({
        'pydnn2': common.pydnn2_runner(net, rule, epochs, **options),
        'pydnn2 NCHW': common.pydnn2_runner(pinned, rule, epochs, channels_last=False),
        'hand': common.hand_runner(net, epochs),
    }, rounds, warmup)
    ours, nchw, hand = (n / median(times[k]) for k in ('pydnn2', 'pydnn2 NCHW', 'hand'))
    ratio = common.paired_ratio(times['hand'], times['pydnn2'])
    over_nchw = common.paired_ratio(times['pydnn2 NCHW'], times['pydnn2'])
    result = dict(bench='train', workload=name, pydnn2=ours, hand=hand, ratio=ratio,
                  nchw=nchw, ratio_nchw=over_nchw, unit='samples/s', rounds=rounds,
                  epochs=epochs, rows=n // epochs, choice=str(net.memory_layout),
                  choosing_seconds=choosing, choosing_alone=str(chosen), seconds=times)
    print(f'{name} train: pydnn2 {fmt_rate(ours)} samples/s, pydnn2 NCHW {fmt_rate(nchw)} '
          f'samples/s, hand (NCHW) {fmt_rate(hand)} samples/s; ratio to the hand loop '
          f'{ratio:.2f}, to pydnn2 NCHW {over_nchw:.2f}', flush=True)
    print(f'    medians of {rounds} interleaved runs of {epochs} epoch(s) x {n // epochs:,} '
          f'rows; the net\'s choice: {net.memory_layout}; choosing alone took '
          f'{choosing:.2f} s ({chosen}), once per net', flush=True)
    return result


def measure_against_fp32(name, make, rows, epochs, rounds, options, warmup=1):
    """pydnn2 with ``options`` (``amp='bf16'``) against the fp32 NCHW hand loop,
    interleaved; returns a result dict."""
    net, _ = make(rows)
    n = common.train_rows(net) * epochs
    times = common.interleave({
        'pydnn2': common.pydnn2_runner(net, rule, epochs, **options),
        'hand': common.hand_runner(net, epochs),
    }, rounds, warmup)
    ours, hand = n / median(times['pydnn2']), n / median(times['hand'])
    ratio = common.paired_ratio(times['hand'], times['pydnn2'])
    native = layout.native_low_precision(net.device)
    result = dict(bench='train', workload=name, pydnn2=ours, hand=hand, ratio=ratio,
                  unit='samples/s', rounds=rounds, epochs=epochs, rows=n // epochs,
                  options=dict(options), native=list(native), seconds=times)
    print(f'{name} train: pydnn2 {options} {fmt_rate(ours)} samples/s, hand (fp32 NCHW) '
          f'{fmt_rate(hand)} samples/s, ratio {ratio:.2f} (bf16 '
          f'{"native" if native else "emulated"} on {net.device})', flush=True)
    return result


def main(argv=None):
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header('training throughput, pydnn2 vs a hand-written loop')
    results = []
    for name, (make, rows, epochs, rounds, options) in WORKLOADS.items():
        if args.quick:
            rows, epochs, rounds = QUICK[name]
        how = {AUTO: measure_auto, BF16: measure_against_fp32}.get(name, measure)
        results.append(how(name, make, rows, epochs, args.rounds or rounds, options))
    layouts = {r['workload']: r for r in results}
    if {'CNN', 'CNN channels_last'} <= set(layouts):
        default, nhwc = layouts['CNN'], layouts['CNN channels_last']
        print(f'    channels_last speeds the CNN up by {nhwc["pydnn2"] / default["pydnn2"]:.2f}x '
              f'in pydnn2 and {nhwc["hand"] / default["hand"]:.2f}x in the hand loop '
              '(medians of separate runs)', flush=True)
    common.write_json(args.json, results)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
