"""IterableDatasets under torchrun: two ranks sharing a stream train as one process does
(every item once, each global batch split between the ranks), and a stream that ends
early on one rank is a DataError on every rank naming the ranks' batch counts, not a
hang.

Each run is a child process (dataset_ranks_child.py) in a session of its own, killed
with its ranks should it overrun.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

CHILD = os.path.join(os.path.dirname(__file__), 'dataset_ranks_child.py')
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']
TIMEOUT = 180
pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason='needs torch.distributed with gloo')


def run(command):
    """Run a child in its own session; kill the session and fail on a timeout or an error."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    child = subprocess.Popen([str(c) for c in command], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = child.communicate(timeout=TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        pytest.fail(f'the child ran over {TIMEOUT} s (killed): a hang')
    if child.returncode:
        pytest.fail(f'the child failed:\n{output}')


def history(result, rank=0):
    with open(f'{result}.rank{rank}.json') as f:
        return json.load(f)


@pytest.mark.slow
def test_two_ranks_sharing_a_stream_train_as_one_process(tmp_path):
    for name in ('one', 'two'):
        (tmp_path / name).mkdir()
    run([sys.executable, CHILD, 'whole', tmp_path / 'one', tmp_path / 'one.pt'])
    run([*TORCHRUN, CHILD, 'whole', tmp_path / 'two', tmp_path / 'two.pt'])
    one, two = torch.load(tmp_path / 'one.pt'), torch.load(tmp_path / 'two.pt')
    for key in one:
        assert torch.allclose(one[key], two[key], rtol=0, atol=1e-6), key
    alone, first, second = (history(tmp_path / 'one.pt'), history(tmp_path / 'two.pt'),
                            history(tmp_path / 'two.pt', 1))
    assert first == second
    assert first['train_loss'] == pytest.approx(alone['train_loss'], rel=1e-5)
    # the error rate over 500 rows a pass: the last global batch (20 rows) counted once
    assert first['train_error'] == alone['train_error']
    assert all(round(e * 500, 6) == int(round(e * 500)) for e in alone['train_error'])


@pytest.mark.slow
def test_a_stream_that_ends_early_on_one_rank_is_a_data_error_on_every_rank(tmp_path):
    run([*TORCHRUN, CHILD, 'short', tmp_path, tmp_path / 'short'])
    # 250 items a rank in batches of 16 (the last 10 short); rank 1's share 40 items short
    expected = ('the training dataset ended early on rank 1: batches per rank: rank 0: 15 or '
                'more, rank 1: 14; every rank must yield the same number of training batches')
    for rank in (0, 1):
        assert (tmp_path / f'short.rank{rank}.txt').read_text() == expected
