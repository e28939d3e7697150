"""The strategies' pieces that need no second process: each rank's rows of a global
batch, each rank's dropout generator from a checkpoint, the checks before a
data-parallel run, one stop request (test_distributed.py runs the real thing under
torchrun)."""

import numpy as np
import pytest
import torch

from pydnn2 import data, distributed, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.preprocess.sources import EpochPlan, Shard, batch_rows
from pydnn2.train import strategy as strategies
from pydnn2.train.stop import StopRequest
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
        rows = batch_rows(len(order), EpochPlan(batch_size=16, shard=Shard(rank, world)), order)
        parts.append(torch.cat(rows).view(4, 16 // world))                  # (steps, b)
    together = torch.cat(parts, 1)                                          # (steps, G)
    assert torch.equal(together, order[:64].view(4, 16))   # batch by batch, the tail left out


def test_each_rank_resumes_its_own_dropout_generator(monkeypatch):
    states = [torch.Generator().manual_seed(seed).get_state() for seed in (1, 2)]
    checkpoint = {'torch': states[0], 'ranks': [{'torch': s} for s in states]}
    drawn = []
    for rank in range(3):
        strategies.SingleProcess(Shard(rank, 3)).restore_rng_states(checkpoint, 'cpu')
        drawn.append(torch.rand(3))
    assert torch.equal(drawn[0], torch.rand(3, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(drawn[1], torch.rand(3, generator=torch.Generator().manual_seed(2)))
    # a rank the checkpoint lacks:
    strategies.SingleProcess(Shard(2, 3)).restore_rng_states(checkpoint, 'cpu')
    assert torch.equal(torch.rand(3), drawn[2])               # seeded, reproducibly
    assert not torch.equal(drawn[2], drawn[0])
    single = {'torch': states[1]}                               # one process's checkpoint
    strategies.SingleProcess().restore_rng_states(single, 'cpu')
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
        strategies.select(net, TrainConfig())
    with pytest.raises(ConfigError, match='global batch of 1200 rows'):
        net.batch_size = 300
        strategies.select(net, TrainConfig(per_rank_batch=True))


def test_sync_batch_norm_needs_cuda():
    net = digits_net()
    with pytest.raises(ConfigError, match='sync_batch_norm=True needs a CUDA net'):
        strategies.convert_sync_batch_norm(net.module, 'cpu')


def test_one_process_is_not_data_parallel():
    net = digits_net()
    strategy = strategies.select(net, TrainConfig())
    assert isinstance(strategy, strategies.SingleProcess) and strategy.is_writer
    assert strategy.shard == Shard(0, 1) and strategy.wrap(net.module, 'cpu') is net.module


def test_a_stop_request_keeps_its_first_reason_and_turns_into_an_interrupt():
    stop = StopRequest()
    assert not stop.requested and stop.code == 0
    stop.ask('EarlyStopping: no improvement')
    stop.ask('the annealer')
    assert stop.reason == 'EarlyStopping: no improvement' and not stop.interrupts
    assert stop.code == 1
    stop.ask('SIGTERM', 'SIGTERM')
    assert stop.interrupts and stop.code == 15 and stop.reason == 'EarlyStopping: no improvement'
    stop.phase_done()
    assert stop.requested                             # a signal's request ends the run


def test_a_rank_that_did_not_ask_takes_over_the_agreed_request(monkeypatch):
    class Voting(strategies.SingleProcess):       # another rank's vote is the largest
        vote_every = 4

        def all_reduce_max(self, values):
            return [max(list(values) + [15])]

    stop, strategy = StopRequest('asked here'), Voting()
    assert not strategy.should_stop(stop, 3)               # not a voting batch
    assert strategy.should_stop(stop, 4) and stop.signal == 'SIGTERM' and stop.interrupts
    assert stop.reason == 'asked here'
    quiet = StopRequest()
    assert strategy.should_stop(quiet, 0) and quiet.reason == 'SIGTERM on another rank'
