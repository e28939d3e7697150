"""Prediction throughput: ``net.predict`` against a raw ``inference_mode`` loop.

On 12,000 raw CNN rows, times ``net.predict(raw_x)`` (which standardises the
rows, then runs the module in batches of ``eval_batch_size(net)`` and
returns classes and probabilities as numpy arrays) against a loop a user
would write over the same module on the already preprocessed tensors, in
the same batch size, producing the same two arrays. Interleaved A B A B ...
The preprocessing step (``pre.preprocess(raw_x)``) is timed on its own too,
and the ratio is also given against the raw loop plus that step.

Run: ``.venv/bin/python benchmarks/bench_predict.py [--quick]``
"""

import sys

import numpy as np
import torch

import common
from common import fmt_rate, median, spread
from pydnn2.evaluate import eval_batch_size


def raw_predict(module, x, batch_size):
    """Classes and probabilities of ``x`` (channel dict), batch by batch, as numpy."""
    module.eval()
    n = len(next(iter(x.values())))
    classes, probabilities = [], []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            p = torch.softmax(module({k: v[start:start + batch_size] for k, v in x.items()}), 1)
            classes.append(p.argmax(1).numpy())
            probabilities.append(p.numpy())
    return np.concatenate(classes), np.concatenate(probabilities)


def measure(rows, rounds, batch_size=None, warmup=1):
    """Interleaved timings of predict, the raw loop and the preprocessing alone."""
    net, _ = common.make_cnn(1000)                  # a small training set: only predict runs
    raw, _ = common.cnn_data(rows, seed=99)
    pre, module = net.preprocessor, net.module
    batch = eval_batch_size(net, batch_size)
    x = pre.preprocess(raw)
    ours, theirs = net.predict(raw, batch_size=batch), raw_predict(module, x, batch)
    assert np.array_equal(ours[0], theirs[0]), 'predict and the raw loop disagree'
    nothing = lambda: None  # noqa: E731
    times = common.interleave({
        'pydnn2': (nothing, lambda: net.predict(raw, batch_size=batch)),
        'raw': (nothing, lambda: raw_predict(module, x, batch)),
        'preprocess': (nothing, lambda: pre.preprocess(raw)),
    }, rounds, warmup)
    t_ours, t_raw, t_pre = (median(times[k]) for k in ('pydnn2', 'raw', 'preprocess'))
    ratio = common.paired_ratio(times['raw'], times['pydnn2'])
    result = dict(bench='predict', workload=f'CNN predict, batch {batch}', pydnn2=rows / t_ours,
                  hand=rows / t_raw, ratio=ratio, unit='samples/s', rounds=rounds,
                  rows=rows, preprocess_seconds=t_pre, preprocess_share=t_pre / t_ours,
                  ratio_with_preprocess=(t_raw + t_pre) / t_ours,
                  spread_pydnn2=spread(times['pydnn2']), spread_hand=spread(times['raw']))
    print(f'CNN predict, batch {batch}: pydnn2 {fmt_rate(rows / t_ours)} samples/s, raw '
          f'inference_mode loop {fmt_rate(rows / t_raw)} samples/s, ratio '
          f'{ratio:.2f}  (medians of {rounds} interleaved runs of {rows:,} rows)',
          flush=True)
    print(f'    preprocess step alone: {1000 * t_pre:.1f} ms = {100 * t_pre / t_ours:.1f}% of '
          f'predict; ratio against raw loop + the same preprocessing: '
          f'{result["ratio_with_preprocess"]:.2f}', flush=True)
    return result


def main(argv=None):
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header('prediction throughput, pydnn2 vs a raw inference_mode loop')
    rows, rounds = (1000, 1) if args.quick else (12000, 5)
    rounds = args.rounds or rounds
    results = [measure(rows, rounds)]
    if not args.quick:
        results.append(measure(rows, max(1, rounds - 2), batch_size=1024))
    common.write_json(args.json, results)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
