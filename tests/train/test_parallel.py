"""The data-parallel pieces that need no second process: each rank's rows of a global
batch, each rank's dropout generator from a checkpoint, the checks before a
data-parallel run (test_distributed.py runs the real thing under torchrun)."""

import numpy as np
import pytest
import torch

from pydnn2 import data, distributed, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.train import parallel
from pydnn2.train.config import TrainConfig


def as_rank(monkeypatch, rank, world):
    monkeypatch.setattr(distributed, 'rank', lambda: rank)
    monkeypatch.setattr(distributed, 'world_size', lambda: world)


@pytest.mark.parametrize('world', [1, 2, 4])
def test_the_ranks_rows_of_each_global_batch_are_disjoint_and_make_the_batch(monkeypatch,
                                                                           world):
    order = torch.randperm(70, generator=torch.Generator().manual_seed(0))
    parts = []
    for rank in range(world):
        as_rank(monkeypatch, rank, world)
        parts.append(parallel.rank_order(order, 16).view(4, 16 // world))   # (steps, b)
    together = torch.cat(parts, 1)                                          # (steps, G)
    assert torch.equal(together, order[:64].view(4, 16))   # batch by batch, the tail left out


def test_each_rank_resumes_its_own_dropout_generator(monkeypatch):
    states = [torch.Generator().manual_seed(seed).get_state() for seed in (1, 2)]
    checkpoint = {'torch': states[0], 'ranks': [{'torch': s} for s in states]}
    drawn = []
    for rank in range(3):
        parallel.restore_torch_states(checkpoint, rank, 'cpu')
        drawn.append(torch.rand(3))
    assert torch.equal(drawn[0], torch.rand(3, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(drawn[1], torch.rand(3, generator=torch.Generator().manual_seed(2)))
    parallel.restore_torch_states(checkpoint, 2, 'cpu')       # a rank the checkpoint lacks:
    assert torch.equal(torch.rand(3), drawn[2])               # seeded, reproducibly
    assert not torch.equal(drawn[2], drawn[0])
    single = {'torch': states[1]}                               # one process's checkpoint
    parallel.restore_torch_states(single, 0, 'cpu')
    assert torch.equal(torch.rand(3), drawn[1])


def digits_net(batch_size=30):
    sets = preprocess.split_training_data(data.load_digits(), batch_size, 60, 20, 20,
                                          rng=np.random.RandomState(0))
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, batch_size, 0, verbose=False)
    net.add_hidden(8)
    net.add_logistic()
    return net


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(monkeypatch):
    net = digits_net(30)
    monkeypatch.setattr(distributed, 'init', lambda device: True)
    as_rank(monkeypatch, 0, 4)
    with pytest.raises(ConfigError, match='batch_size 30 does not split evenly over 4 '
                                          'processes.*per_rank_batch=True'):
        parallel.start(net, TrainConfig())
    with pytest.raises(ConfigError, match='global batch of 1200 rows'):
        net.batch_size = 300
        parallel.start(net, TrainConfig(per_rank_batch=True))


def test_sync_batch_norm_needs_cuda():
    net = digits_net()
    with pytest.raises(ConfigError, match='sync_batch_norm=True needs a CUDA net'):
        parallel.sync_batch_norm(net.module, 'cpu')


def test_one_process_is_not_data_parallel():
    net = digits_net()
    assert not parallel.start(net, TrainConfig())
