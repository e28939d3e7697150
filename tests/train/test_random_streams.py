"""train() draws dropout from the net's rng without reseeding the caller's global
torch generator: the global state after train is what it was before, and two
runs from the same net rng train bit-identical weights whatever the global
state was."""

import numpy as np
import torch

from pydnn2 import neuralnet as nn
from pydnn2 import rng as rngs


def build_dropout(net):
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_dropout(0.5)
    net.add_hidden(16)
    net.add_logistic()


def test_train_leaves_the_global_torch_generator_as_it_was(small_net):
    net = small_net(build=build_dropout)
    torch.manual_seed(5)
    torch.rand(3)
    before = torch.get_rng_state()
    net.train(nn.Adam(0.01), epochs=1, checkpoint_every=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_runs_from_the_same_rng_are_identical_whatever_the_global_state(small_net):
    weights = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        net = small_net(build=build_dropout, name=f'global{global_seed}')
        net.train(nn.Adam(0.01), epochs=2)
        weights.append(net.get_params())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_dropout_follows_the_net_rng(small_net):
    """Different net seeds draw different dropout masks (the stream is the net's)."""
    nets = [small_net(build=build_dropout, name=f'seed{seed}') for seed in (0, 1)]
    for net, seed in zip(nets, (0, 1)):
        net.rng = np.random.RandomState(seed)
        net.train(nn.StochasticGradientDescent(0.01), epochs=1)
    assert not torch.equal(nets[0].get_params()['layers.n1.conv.weight'],
                           nets[1].get_params()['layers.n1.conv.weight'])


def test_forked_gives_the_global_generator_back():
    before = torch.get_rng_state()
    with rngs.forked():
        rngs.seed_torch(3)
        first = torch.rand(2)
    assert torch.equal(torch.get_rng_state(), before)
    with rngs.forked():
        rngs.seed_torch(3)
        assert torch.equal(torch.rand(2), first)
