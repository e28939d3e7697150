"""Peak memory (RSS) of CNN training: pydnn2 against the hand-written loop.

Each loop trains in a fresh child process (this script run with
``--child pydnn2|hand``), which builds the same data and net, records its
resident set size (RSS) after the setup and after every epoch, and reports
its peak (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The parent prints
both peaks, their ratio (pydnn2 / hand; at most 1.1 is the target) and the
RSS after each epoch, which should stay flat. pydnn2 is pinned to NCHW
(``channels_last=False``), the layout the hand loop trains in.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--quick]``
"""

import json
import os
import resource
import subprocess
import sys

MB = 2 ** 20


def rss_bytes():
    """The current resident set size, from /proc (psutil when /proc is missing)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        import psutil
        return psutil.Process().memory_info().rss


def peak_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024     # Linux counts KiB


def child(kind, rows, epochs, threads):
    """Train in this process and print one JSON line with the RSS figures."""
    import torch

    import common

    if threads:
        torch.set_num_threads(threads)
    net, _ = common.make_cnn(rows)
    net.preprocessor.get_train(), net.preprocessor.get_valid(), net.preprocessor.get_test()
    after = []
    setup = rss_bytes()
    if kind == 'pydnn2':
        from pydnn2.train.trainer import Trainer

        run_epoch = Trainer.run_epoch

        def measured(*args, **kwargs):        # records RSS after each of pydnn2's epochs
            row = run_epoch(*args, **kwargs)
            after.append(rss_bytes())
            return row

        Trainer.run_epoch = measured
        net.train(common.nn.StochasticGradientDescent(common.LEARNING_RATE), epochs=epochs,
                  verbose=False, progress=False, channels_last=False)   # NCHW, as by hand
    else:
        import copy

        common.hand_train(copy.deepcopy(net.module), net.preprocessor, epochs, net.batch_size,
                          best_path=os.path.join(net.output_dir, 'hand_best.pt'),
                          on_epoch=lambda: after.append(rss_bytes()))
    print(json.dumps(dict(kind=kind, setup=setup, epochs=after, peak=peak_bytes())))


def run_child(kind, rows, epochs, threads, environment=None):
    command = [sys.executable, os.path.abspath(__file__), '--child', kind, str(rows),
               str(epochs), str(threads or 0)]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env={**os.environ, **(environment or {})}).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(runs, label):
    """Print one pair of runs; returns (pydnn2 MB, hand MB)."""
    ours, hand = runs['pydnn2']['peak'] / MB, runs['hand']['peak'] / MB
    print(f'CNN training peak RSS{label}: pydnn2 {ours:,.0f} MB, hand {hand:,.0f} MB, ratio '
          f'{ours / hand:.2f} (pydnn2 / hand; lower is better)', flush=True)
    for kind, r in runs.items():
        epochs_mb = ', '.join(f'{b / MB:,.0f}' for b in r['epochs'])
        change = (r['epochs'][-1] - r['epochs'][0]) / MB
        print(f'    {kind:>6}: RSS {r["setup"] / MB:,.0f} MB after setup; after each epoch '
              f'{epochs_mb} MB (epoch 1 to {len(r["epochs"])}: {change:+.1f} MB)', flush=True)
    return ours, hand


def main(argv=None):
    import common

    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header('peak RSS of CNN training, each loop in a fresh process')
    rows, epochs = (1000, 2) if args.quick else (12000, 3)
    runs = {kind: run_child(kind, rows, epochs, args.threads) for kind in ('pydnn2', 'hand')}
    ours, hand = report(runs, '')
    result = dict(bench='memory', workload='CNN training peak RSS', pydnn2=ours, hand=hand,
                  ratio=ours / hand, unit='MB', rows=rows, epochs=epochs,
                  per_epoch={k: [b / MB for b in r['epochs']] for k, r in runs.items()},
                  setup={k: r['setup'] / MB for k, r in runs.items()})
    if not args.quick:
        # glibc returns freed memory to the system or keeps it by a threshold that moves
        # with the sizes freed so far, which makes the peaks above vary by +-10% from run
        # to run; with the threshold fixed, what remains is the loops' own allocations.
        fixed = {'MALLOC_MMAP_THRESHOLD_': str(MB)}
        runs = {kind: run_child(kind, rows, epochs, args.threads, fixed)
                for kind in ('pydnn2', 'hand')}
        ours, hand = report(runs, ' (MALLOC_MMAP_THRESHOLD_=1 MiB)')
        result.update(fixed_threshold=dict(pydnn2=ours, hand=hand, ratio=ours / hand))
    common.write_json(args.json, [result])
    return [result]


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main(sys.argv[1:])
