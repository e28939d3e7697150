"""Run every benchmark, each in its own process, and print one summary table.

``python3 dev.py bench`` starts this (after setting up .venv). Options:
``--quick`` for a smoke run of under a minute (small data, few rounds: the
figures are not measurements), ``--threads N`` to fix torch's thread count,
``--skip NAME`` (repeatable) to leave a benchmark out.

Run: ``.venv/bin/python benchmarks/run_all.py [--quick]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = ('train', 'predict', 'memory', 'estimate', 'peers', 'tracking')

# (what, how the ratio reads, the target of issue 5)
TARGETS = {
    ('train', 'CNN'): ('>=', 0.97),
    ('train', 'CNN auto layout'): ('>=', 1.30),     # issue 12: the default against NCHW by hand
    ('train', 'MLP'): ('>=', 0.95),
    ('predict', None): ('>=', 0.97),
    ('memory', None): ('<=', 1.10),
    ('estimate', None): ('abs<=', 0.30),
    ('tracking', None): ('>=', 0.97),               # issue 20: a logger costs at most 3%
}


def run(name, options, folder):
    """Run ``bench_<name>.py`` in a fresh process; return its results (or [] on failure)."""
    path = os.path.join(folder, f'{name}.json')
    command = [sys.executable, os.path.join(HERE, f'bench_{name}.py'), '--json', path] + options
    started = time.perf_counter()
    code = subprocess.call(command, cwd=HERE)
    print(f'   ({name}: {time.perf_counter() - started:.0f} s)\n', flush=True)
    if code != 0 or not os.path.exists(path):
        print(f'bench_{name}.py failed (exit code {code})', flush=True)
        return []
    with open(path) as f:
        return json.load(f)


def target_of(result):
    bench, workload = result['bench'], result['workload']
    rule = (TARGETS.get((bench, workload)) or TARGETS.get((bench, workload.split()[0]))
            or TARGETS.get((bench, None)))
    if rule is None:
        return '', ''
    how, bound = rule
    value = result['error'] if how == 'abs<=' else result['ratio']
    met = abs(value) <= bound if how == 'abs<=' else (value >= bound if how == '>=' else
                                                      value <= bound)
    shown = f'|error| <= {bound:.0%}' if how == 'abs<=' else f'{how} {bound:.2f}'
    return shown, 'yes' if met else 'NO'


def rows_of(result, quick=False):
    """(benchmark, pydnn2, reference, ratio, target, met) strings for one result."""
    target, met = target_of(result)
    met = '(quick)' if quick and met else met
    if result['bench'] == 'estimate':
        return (result['workload'], f'{result["estimate"]:.2f} s estimated',
                f'{result["measured"]:.2f} s measured', f'{result["error"]:+.0%} error',
                target, met)
    if result['bench'] == 'peers':
        return (f'{result["workload"]}: {result["candidate"]}',
                f'{result["rate"]:,.0f} samples/s', f'{result["hand"]:,.0f} samples/s',
                f'{result["ratio"]:.2f}', '', '')
    unit = result['unit']

    def fmt(v):
        return f'{v:,.0f} {unit}'

    return (result['workload'] if result['bench'] != 'train' else f'{result["workload"]} train',
            fmt(result['pydnn2']), fmt(result['hand']), f'{result["ratio"]:.2f}', target, met)


def table(results, quick=False):
    """The summary table, one line per result, in aligned columns."""
    head = ('benchmark', 'pydnn2', 'hand-written', 'ratio', 'target', 'met')
    lines = [head]
    for result in results:
        lines.append(rows_of(result, quick))
        fixed = result.get('fixed_threshold')
        if fixed:
            lines.append(rows_of(dict(result, workload=f'{result["workload"]}, fixed mmap '
                                      'threshold', **fixed), quick))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='a smoke run of under a minute')
    parser.add_argument('--threads', type=int, default=None, help='torch threads')
    parser.add_argument('--skip', action='append', default=[], choices=BENCHMARKS,
                        help='leave a benchmark out (repeatable)')
    args = parser.parse_args(argv)
    options = (['--quick'] if args.quick else []) + \
        ([f'--threads={args.threads}'] if args.threads else [])
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix='pydnn2-bench-') as folder:
        for name in BENCHMARKS:
            if name not in args.skip:
                results += run(name, options, folder)
    sys.path.insert(0, HERE)
    import common

    print(f'== summary ({common.machine()}; load average {common.load_average():.1f}; '
          f'{time.perf_counter() - started:.0f} s in all)')
    print('ratio: pydnn2 / hand-written, in samples/s (above 1 is faster) or MB (below 1 is '
          'leaner)' + ('; --quick: smoke figures, not measurements' if args.quick else ''))
    print(table(results, args.quick))
    return 0 if results else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
