"""Do 2-rank torchrun runs end well? Consecutive runs of one small training, counted.

Issue 21, item 7: about one successful ``torchrun`` run in ten ended with a
rank aborted at teardown ("terminate called without an active exception",
SIGABRT, exit status 1 from torchrun) after everything was written, because
under torchrun the ranks tore their gloo connections down without meeting
first. This runs ``torchrun --standalone --nproc_per_node=2`` on this file
``--runs`` times in a row (each rank trains the digits MLP for ``--epochs``
epochs with a checkpoint every epoch, rank 0 writing its files into a folder
of its own per run), each run in a session of its own that is killed whole
if it overruns ``--timeout`` seconds, and prints every run's exit status and
the count that exited 0 (with any "terminate called" seen in their output).

Run: ``.venv/bin/python benchmarks/bench_teardown.py [--runs 30]``; exits 1 unless
every run exited 0.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)


def worker(output_dir, epochs):
    """One rank (run by torchrun): train the digits MLP data-parallel."""
    import numpy as np
    import torch
    from pydnn2 import data, preprocess
    from pydnn2 import neuralnet as nn

    torch.set_num_threads(1)
    sets = preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(3))
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32, np.random.RandomState(5),
                name='teardown', output_dir=output_dir, verbose=False)
    net.add_hidden(32, batch_normalize=False)
    net.add_logistic()
    net.train(nn.StochasticGradientDescent(0.1), epochs=epochs, checkpoint_every=1,
              progress=False)


def session_kill(pid):
    """SIGKILL every process of the session ``pid`` leads (torchrun and its workers)."""
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == pid:               # the session id (field 6 of stat)
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


def one_run(folder, epochs, timeout):
    """``(exit status, seconds, output)`` of one torchrun run; status None on a timeout."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                              '--nproc_per_node=2', HERE, '--worker', folder,
                              '--epochs', str(epochs)],
                             env=env, start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        output = child.communicate(timeout=timeout)[0]
        status = child.returncode
    except subprocess.TimeoutExpired:
        session_kill(child.pid)
        output, status = child.communicate()[0], None
    return status, time.perf_counter() - started, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=30)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--timeout', type=float, default=180)
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.epochs)
    root = tempfile.mkdtemp(prefix='pydnn2-bench-teardown-')
    statuses, aborts = [], 0
    for run in range(args.runs):
        status, seconds, output = one_run(os.path.join(root, f'run{run:03d}'), args.epochs,
                                          args.timeout)
        statuses.append(status)
        aborted = 'terminate called' in output
        aborts += aborted
        print(f'run {run + 1:3d}: exit {status} in {seconds:.1f} s'
              + (' ("terminate called" in the output)' if aborted else ''), flush=True)
        if status != 0:
            print(output[-3000:], flush=True)
    good = sum(status == 0 for status in statuses)
    print(f'{good} of {args.runs} consecutive 2-rank torchrun runs exited 0; '
          f'{aborts} printed "terminate called"')
    return 0 if good == args.runs else 1


if __name__ == '__main__':
    sys.exit(main())
