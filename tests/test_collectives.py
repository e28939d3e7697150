"""pydnn2.distributed in one process (no torchrun): rank 0 of 1, collectives give their
input back; the blocks of rows; a process group of one, initialised from a
torchrun-like environment, goes through the real collectives."""

import pytest
import torch

from pydnn2 import distributed


def test_one_process_is_the_writer_and_collectives_give_their_input_back(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.is_writer()) == (0, 1, True)
    assert distributed.environment() is None and not distributed.init('cpu')
    t = torch.arange(6.0).view(3, 2)
    assert distributed.all_reduce_sum(t) is t and distributed.all_gather_rows(t) is t
    assert distributed.all_reduce_max([1.0, 2.0]) == [1.0, 2.0]
    assert distributed.broadcast({'a': 1}) == {'a': 1}
    assert distributed.on_writer(lambda: 7) == 7
    distributed.barrier()


def test_torchrun_variables_name_the_rank_before_the_group_exists(monkeypatch):
    monkeypatch.setenv('RANK', '3')
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('LOCAL_RANK', '1')
    assert distributed.environment()['local_rank'] == 1
    assert (distributed.rank(), distributed.world_size(), distributed.is_writer()) == (3, 4, False)
    assert distributed.shard(list(range(10))) == [7, 8, 9]        # the last block


@pytest.mark.parametrize('n, parts', [(10, 4), (3, 4), (32, 2), (0, 3)])
def test_blocks_cover_the_rows_once_in_order(n, parts):
    blocks = [distributed.block(n, part, parts) for part in range(parts)]
    rows = [i for start, stop in blocks for i in range(start, stop)]
    assert rows == list(range(n))
    assert max(b - a for a, b in blocks) - min(b - a for a, b in blocks) <= 1


def test_a_group_of_one_runs_the_real_collectives(monkeypatch, tmp_path):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    with __import__('socket').socket() as s:
        s.bind(('127.0.0.1', 0))
        monkeypatch.setenv('MASTER_PORT', str(s.getsockname()[1]))
    assert distributed.init('cpu') and distributed.active()
    try:
        rows = torch.arange(12.0).view(4, 3)
        assert torch.equal(distributed.all_gather_rows(rows), rows)
        assert torch.equal(distributed.all_reduce_sum(rows), rows)
        assert distributed.all_gather_objects('x') == ['x']
        assert distributed.broadcast([1, 2]) == [1, 2]
        with pytest.raises(ValueError, match='boom'):
            distributed.on_writer(lambda: (_ for _ in ()).throw(ValueError('boom')))
        distributed.barrier()
    finally:
        distributed.finish()
    assert not distributed.active()
