"""pydnn2.launch starts the ranks of a group itself (spawn for an importable function),
and each rank's training session draws its own dropout masks; net.train(...,
devices=N) is tested against torchrun in tests/train/test_distributed.py."""

import os
import sys

import pytest
import torch

import pydnn2
from pydnn2 import launcher, neuralnet as nn, rng as rngs
from pydnn2.errors import ConfigError
from pydnn2.train import TrainConfig, Trainer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'train'))
import distributed_child  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason='needs torch.distributed with gloo')


def test_launch_spawns_the_ranks_and_returns_rank_0s_result(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert pydnn2.launch(distributed_child.ranks_seen, 10, nprocs=2) == [10, 11]


def test_the_start_method_follows_where_the_function_lives():
    assert launcher.start_method_for(distributed_child.ranks_seen) == 'spawn'
    with pytest.raises(ConfigError, match='start_method must be one of'):
        launcher.start_method_for(print, 'teleport')


@pytest.mark.parametrize('nprocs', [0, 1.5, True, '2'])
def test_a_bad_number_of_processes_is_refused(nprocs):
    with pytest.raises(ConfigError, match='number of processes must be an int'):
        pydnn2.launch(print, nprocs=nprocs)


def test_launch_from_a_rank_of_a_group_is_refused(monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(ConfigError, match='already one rank of a group'):
        pydnn2.launch(print, nprocs=2)


def test_each_rank_draws_its_own_dropout_masks_reproducibly(monkeypatch, tmp_path):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    first, second = pydnn2.launch(distributed_child.dropout_draws, str(tmp_path), nprocs=2)
    assert first != second                                  # seeded with seed + rank
    with rngs.forked():
        net = distributed_child.build(str(tmp_path))
        Trainer(net, nn.StochasticGradientDescent(0.1), TrainConfig())
        assert torch.rand(4).tolist() == first              # rank 0 draws as one process
