"""Ranks that must agree do: batch-norm statistics after training, and the data they hold.

Each run is two gloo ranks of one ``torchrun`` on the CPU (agreement_child.py),
in a session of its own that is killed whole if it overruns, so a hung
collective fails the test instead of hanging it.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

CHILD = os.path.join(os.path.dirname(__file__), 'agreement_child.py')
TIMEOUT = 180
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.distributed.is_available()
                                 or not torch.distributed.is_gloo_available(),
                                 reason='needs torch.distributed with gloo')]


def torchrun(scenario, tmp_path):
    """Run the child's ``scenario`` as 2 ranks; returns each rank's record, in rank order."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    (tmp_path / 'out').mkdir()
    result = tmp_path / 'result'
    child = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                              '--nproc_per_node=2', CHILD, scenario, str(tmp_path / 'out'),
                              str(result)], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = child.communicate(timeout=TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.wait()
        pytest.fail(f'torchrun ran over {TIMEOUT} s (killed with its ranks)')
    assert child.returncode == 0, output[-4000:]
    records = []
    for rank in (0, 1):
        with open(f'{result}.rank{rank}.json') as f:
            records.append(json.load(f))
    return records


def test_after_training_rank_1_predicts_exactly_as_rank_0_with_batch_norm(tmp_path):
    first, second = torchrun('batch_norm', tmp_path)
    assert 'error' not in first and 'error' not in second, (first, second)
    assert first['history'] == second['history']
    zero, one = (torch.load(tmp_path / f'result.rank{r}.pt') for r in (0, 1))
    assert torch.equal(zero, one), (zero - one).abs().max()


def test_a_rank_with_fewer_rows_is_a_data_error_naming_it(tmp_path):
    records = torchrun('fewer_rows', tmp_path)
    for record in records:
        assert record.get('error') == 'DataError', record
        assert 'rank 1' in record['message'] and 'train' in record['message']
        assert '1056' in record['message'] and '1088' in record['message']
    assert os.listdir(tmp_path / 'out') == []        # refused before anything was written


def test_a_rank_with_other_rows_of_the_same_shape_is_a_data_error_naming_it(tmp_path):
    records = torchrun('other_rows', tmp_path)
    for record in records:
        assert record.get('error') == 'DataError', record
        assert 'rank 1' in record['message'] and 'train' in record['message']
        assert 'sampled rows differ' in record['message']
    assert os.listdir(tmp_path / 'out') == []
