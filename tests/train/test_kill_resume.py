"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run.

Each run is a child process (tests/train/resume_child.py) training a net on
rotating images (Rotator360) with an annealer; the killed one is stopped
with SIGKILL at a chosen batch after its first checkpoint (the child writes a
beacon file there and waits for the signal), then resumed from the newest
checkpoint in a new process.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

CHILD = os.path.join(os.path.dirname(__file__), 'resume_child.py')
pytestmark = [pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL'),
              pytest.mark.slow]


def run_child(rule, folder, result, *flags):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run([sys.executable, CHILD, rule, str(folder), str(result), *flags],
                   check=True, env=env, timeout=300)


def wait_for_beacon(beacon, child, limit=240):
    """Wait until the child has written ``beacon`` (it then waits for the signal)."""
    deadline = time.monotonic() + limit
    while not beacon.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f'the child never reached its pause (exit code {child.wait()})')
        time.sleep(0.01)


def kill_at(rule, folder, result, epoch, batch, *flags):
    """Start a child, SIGKILL it at batch ``batch`` of epoch ``epoch``; its exit code."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    beacon = folder.parent / f'{folder.name}.paused'
    child = subprocess.Popen([sys.executable, CHILD, rule, str(folder), str(result),
                              '--checkpoint', f'--pause={epoch}.{batch}:{beacon}', *flags],
                             env=env)
    wait_for_beacon(beacon, child)
    child.send_signal(signal.SIGKILL)
    return child.wait()


# Where each run is killed: mid-epoch, at an epoch's last batch (22 per epoch),
# at the first batch of an epoch; always after the first checkpoint.
@pytest.mark.parametrize('rule, epoch, batch', [('sgd', 2, 5), ('momentum', 2, 22),
                                                ('adam', 3, 1), ('adadelta', 2, 12)])
def test_sigkill_then_resume_is_bit_identical(rule, epoch, batch, tmp_path):
    straight = tmp_path / 'straight.pt'
    run_child(rule, tmp_path / 'a', straight)
    folder = tmp_path / 'b'
    code = kill_at(rule, folder, tmp_path / 'unused.pt', epoch, batch)
    assert code == -signal.SIGKILL, 'the child finished before it could be killed'
    assert not (tmp_path / 'unused.pt').exists()
    resumed = tmp_path / 'resumed.pt'
    run_child(rule, folder, resumed, '--checkpoint', '--resume')
    a, b = torch.load(straight), torch.load(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def history_rows(folder):
    """The rows HistoryLogger wrote, without the time each epoch took."""
    with open(folder / 'history.csv', newline='') as f:
        return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


@pytest.mark.parametrize('epoch, batch', [(2, 3), (3, 10)])
def test_sigkill_then_resume_keeps_the_history_file_and_early_stopping(epoch, batch, tmp_path):
    straight = tmp_path / 'straight.pt'
    run_child('adam', tmp_path / 'a', straight, '--callbacks')
    expected = history_rows(tmp_path / 'a')
    main = [row for row in expected if row['phase'] == 'main']
    assert 2 < len(main) < 6, 'EarlyStopping should end the main phase before its 6 epochs'
    folder = tmp_path / 'b'
    code = kill_at('adam', folder, tmp_path / 'unused.pt', epoch, batch, '--callbacks')
    assert code == -signal.SIGKILL, 'the child finished before it could be killed'
    killed_at = len(history_rows(folder))
    assert killed_at == epoch - 1 and killed_at < len(main)
    run_child('adam', folder, tmp_path / 'resumed.pt', '--checkpoint', '--resume', '--callbacks')
    assert history_rows(folder) == expected           # every epoch, the stop in the same one
    a, b = torch.load(straight), torch.load(tmp_path / 'resumed.pt')
    assert all(torch.equal(a[key], b[key]) for key in a)
