"""Training on torch datasets read by 2 DataLoader workers, stopped mid-epoch and resumed,
ends bit-identical to an unbroken run (weights and history): SIGKILL (the run goes on
from the last epoch's checkpoint) and SIGTERM (from the checkpoint written mid-epoch:
the epoch's batches done are skipped, a stream's drawn again and dropped), for a
map-style dataset that augments at random and for an IterableDataset that shuffles and
augments.

Each run is a child process (dataset_resume_child.py) in a session of its own; it says
when it is mid-epoch (batch 5 of epoch 2) by writing a file, and waits there until the
test has signalled it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

CHILD = os.path.join(os.path.dirname(__file__), 'dataset_resume_child.py')
TIMEOUT = 300
INTERRUPTED = 3
pytestmark = pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')


def start(kind, folder, result, *flags):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, CHILD, kind, str(folder), str(result), *flags],
                            env=env, start_new_session=True)


def finish(child, expected=0):
    try:
        code = child.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        pytest.fail(f'the child ran over {TIMEOUT} s (killed)')
    assert code == expected


def wait_for(path, child):
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        if child.poll() is not None or time.monotonic() > deadline:
            os.killpg(child.pid, signal.SIGKILL)
            pytest.fail(f'the child never reached mid-epoch (exit code {child.poll()})')
        time.sleep(0.01)


def outcome(result):
    with open(f'{result}.json') as f:
        return torch.load(result), json.load(f)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    """The unbroken run of each kind: ``{kind: (weights, history)}``, made on first use."""
    made = {}

    def run(kind):
        if kind not in made:
            folder = tmp_path_factory.mktemp(f'straight-{kind}')
            finish(start(kind, folder, folder / 'result.pt'))
            made[kind] = outcome(folder / 'result.pt')
        return made[kind]
    return run


@pytest.mark.parametrize('kind', ['map', 'stream'])
@pytest.mark.parametrize('how', ['SIGKILL', 'SIGTERM'])
@pytest.mark.slow
def test_stopped_mid_epoch_then_resumed_is_bit_identical(kind, how, straight, tmp_path):
    folder, stall = tmp_path / 'run', str(tmp_path / 'stalled')
    child = start(kind, folder, tmp_path / 'unused.pt', '--stall', stall)
    wait_for(stall, child)
    if how == 'SIGKILL':                        # the child and its workers, at once
        os.killpg(child.pid, signal.SIGKILL)
        finish(child, -signal.SIGKILL)
        assert sorted(os.listdir(folder)) == ['data.lock', 'data_best_net.pt',
                                              'data_checkpoint_0001.pt']
    else:                                       # the child alone; it finishes the batch
        os.kill(child.pid, signal.SIGTERM)
        open(stall + '.go', 'w').close()
        finish(child, INTERRUPTED)
        assert 'data_checkpoint_0001_interrupted.pt' in os.listdir(folder)
    assert not (tmp_path / 'unused.pt').exists()
    finish(start(kind, folder, tmp_path / 'resumed.pt', '--resume'))
    (a, history_a), (b, history_b) = straight(kind), outcome(tmp_path / 'resumed.pt')
    assert history_b == history_a
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
