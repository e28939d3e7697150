"""Initialisers, per-layer init=/bias=, init_model and force_init, get_description
and net.layers."""

import json
import math

import numpy as np
import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, NetBuildError
from pydnn2.model.initializers import (Constant, Gaussian, GlorotUniform, Initializer, Kaiming,
                                 Orthogonal, Uniform, as_initializer)
from pydnn2.preprocess import ArrayPreprocessor, split_training_data


def make_pre(shape=(1, 8, 8), n=64, extra=None):
    rng = np.random.RandomState(0)
    x = {'images': rng.rand(n, *shape).astype(np.float32)}
    x.update({k: rng.rand(n, *s).astype(np.float32) for k, s in (extra or {}).items()})
    return ArrayPreprocessor(split_training_data((x, np.arange(n) % 3), 16, 50, 25, 25))


def make_net(shape=(1, 8, 8), extra=None, **kwargs):
    kwargs.setdefault('verbose', False)
    return nn.NN(make_pre(shape, extra=extra), 'images', 3, 16, np.random.RandomState(1),
                 **kwargs)


def parameters(net):
    return {k: v.detach().clone() for k, v in net.module.named_parameters()}


def fill(initializer, shape=(400, 500), fans=(500, 400)):
    tensor = torch.empty(shape)
    initializer.fill(tensor, *fans, torch.Generator().manual_seed(0))
    return tensor


def test_initialisers_have_the_documented_statistics():
    g = fill(Gaussian(loc=0.5, scale=0.02))
    assert g.mean().item() == pytest.approx(0.5, abs=1e-3)
    assert g.std().item() == pytest.approx(0.02, rel=0.01)
    u = fill(Uniform(-0.3, 0.1))
    assert -0.3 <= u.min().item() and u.max().item() < 0.1
    assert u.mean().item() == pytest.approx(-0.1, abs=2e-3)
    assert u.std().item() == pytest.approx(0.4 / math.sqrt(12), rel=0.01)
    bound = math.sqrt(6 / (500 + 400))
    glorot = fill(GlorotUniform())
    assert glorot.abs().max().item() <= bound
    assert glorot.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert fill(Kaiming()).std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.01)
    assert torch.equal(fill(Constant(0.25), (3, 4)), torch.full((3, 4), 0.25))
    q = fill(Orthogonal(gain=2.0), (6, 6), (6, 6))
    assert torch.allclose(q @ q.T, 4 * torch.eye(6), atol=1e-5)


def test_initialisers_are_plain_data_and_back():
    for init in (Gaussian(scale=0.01), Uniform(-1, 1), GlorotUniform(), Kaiming(),
                 Constant(3), Orthogonal(1.1)):
        config = init.to_config()
        json.dumps(config)
        assert as_initializer(config, 'test', 'init') == init
    assert Constant(3).to_config() == {'initializer': 'Constant', 'val': 3.0}


@pytest.mark.parametrize('make, message', [
    (lambda: Gaussian(scale=-1), 'scale must be a number >= 0'),
    (lambda: Uniform(1, 0), 'low must not exceed high'),
    (lambda: Constant('a'), 'val must be a finite number'),
    (lambda: as_initializer(GlorotUniform, 'add_hidden', 'init'), 'call it, GlorotUniform()'),
    (lambda: as_initializer('zeros', 'add_hidden', 'init'), 'init must be an initializer'),
])
def test_bad_initialisers_are_refused(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


def test_init_and_bias_set_each_layers_weights():
    net = make_net((2, 8, 8))
    net.add_conv_pool(3, (3, 3), (1, 1), init=Constant(0.5), bias=Constant(-1))
    conv = net.layers[-1]
    assert torch.equal(conv.W, torch.full((3, 2, 3, 3), 0.5))
    assert torch.equal(conv.b, torch.full((3,), -1.0))
    net.add_convolution(2, (3, 3), (1, 1), init=Constant(0.25))
    assert torch.equal(net.layers[-3].W, torch.full((2, 3, 3, 3), 0.25))
    net.add_hidden(4, batch_normalize=False, init=Constant(0.125), bias=Constant(2))
    assert torch.equal(net.layers[-2].W, torch.full((4, 2 * 4 * 4), 0.125))
    assert torch.equal(net.layers[-2].b, torch.full((4,), 2.0))
    net.add_fully_connected(5, init=Gaussian(scale=0.0), bias=Constant(1))
    assert torch.equal(net.layers[-1].W, torch.zeros(5, 4))
    net.add_logistic(init=Constant(0.0), bias=Constant(0.5))
    assert torch.equal(net.layers[-1].W, torch.zeros(3, 5))
    assert torch.equal(net.layers[-1].b, torch.full((3,), 0.5))
    assert net.nodes[1].args['init'] == {'initializer': 'Constant', 'val': 0.5}


def test_recurrent_init_init_inner_and_bias_reach_the_right_weights():
    net = make_net(extra={'seq': (5, 4)})
    seq = net.new_pathway('seq')
    seq.add_lstm(3, init=Constant(0.5), init_inner=Constant(-0.5), bias=Constant(1))
    layer = net.layers[-1]
    assert set(layer.params) == {'W_input', 'W_recur', 'b', 'b_recur'}
    assert torch.equal(layer.params['W_input'], torch.full((12, 4), 0.5))
    assert torch.equal(layer.params['W_recur'], torch.full((12, 3), -0.5))
    assert torch.equal(layer.params['b'], torch.ones(12))
    assert torch.equal(layer.params['b_recur'], torch.zeros(12))
    seq.add_gru(3, init=Constant(0.1))                # init_inner defaults to init (neon)
    assert torch.equal(net.layers[-1].params['W_recur'], torch.full((9, 3), 0.1))
    seq.add_recurrent(4)                             # defaults: Glorot in, orthogonal inner
    u = net.layers[-1].params['W_recur']
    assert torch.allclose(u @ u.T, torch.eye(4), atol=1e-5)
    w = net.layers[-1].params['W_input']
    assert w.abs().max().item() <= math.sqrt(6 / (3 + 4))
    lstm = make_net(extra={'seq': (5, 4)}).new_pathway('seq')
    lstm.add_lstm(3)
    for gate in lstm._net.layers[-1].params['W_recur'].chunk(4):
        assert torch.allclose(gate @ gate.T, torch.eye(3), atol=1e-5)


def test_defaults_are_pydnns_draws():
    net = make_net()
    net.add_fully_connected(7)                       # relu follows: N(0, 1/sqrt(fan_in)), bias 1
    net.add_logistic()                               # a zero classifier
    generator = torch.Generator().manual_seed(net.seed)
    lecun = torch.empty(7, 64).normal_(0, 1 / math.sqrt(64), generator=generator)
    assert torch.equal(net.layers[1].W, lecun) and torch.equal(net.layers[1].b, torch.ones(7))
    assert torch.equal(net.layers[2].W, torch.zeros(3, 7))
    assert torch.equal(net.layers[2].b, torch.zeros(3))


def test_he_glorot_defaults_draw_from_the_same_generator():
    net = make_net(initialization='he-glorot')
    net.add_fully_connected(7)                       # relu follows: He normal
    net.add_logistic()                               # Glorot uniform
    generator = torch.Generator().manual_seed(net.seed)
    he = torch.empty(7, 64).normal_(0, math.sqrt(2 / 64), generator=generator)
    bound = math.sqrt(6 / (7 + 3))
    glorot = torch.empty(3, 7).uniform_(-bound, bound, generator=generator)
    assert torch.equal(net.layers[1].W, he) and torch.equal(net.layers[2].W, glorot)
    assert torch.equal(net.layers[1].b, torch.zeros(7))


@pytest.mark.parametrize('call', [
    lambda n: n.add_hidden(4, bias=Constant(1)),
    lambda n: n.add_convolution(2, (3, 3), (1, 1), bias=Constant(1)),
    lambda n: n.add_fully_connected(4, use_bias=False, bias=Constant(1)),
])
def test_a_bias_initialiser_for_a_layer_without_bias_is_refused(call):
    net = make_net()
    with pytest.raises(NetBuildError, match='leaves the layer without a bias'):
        call(net)
    assert len(net.nodes) == 1


def test_init_model_initialises_an_untrained_net_once():
    net = make_net()
    net.add_hidden(6)
    net.add_logistic()
    built = parameters(net)
    assert not net.initialized
    assert net.init_model() is False and net.initialized        # nothing to draw
    assert all(torch.equal(v, built[k]) for k, v in parameters(net).items())

    fresh = make_net()
    fresh.add_hidden(6)
    fresh.add_logistic(bias=Constant(0.5))
    assert fresh.init_model(Constant(0.3)) is True
    assert torch.equal(fresh.layers[1].W, torch.full((6, 64), 0.3))
    assert torch.equal(fresh.layers[4].W, torch.full((3, 6), 0.3))
    assert torch.equal(fresh.layers[4].b, torch.full((3,), 0.5))   # biases keep their own
    assert fresh.init_model(Gaussian()) is False                  # initialised: kept
    assert torch.equal(fresh.layers[1].W, torch.full((6, 64), 0.3))
    assert fresh.init_model(Gaussian(scale=0.01), overwrite=True) is True
    assert fresh.layers[1].W.std().item() == pytest.approx(0.01, rel=0.2)


def test_init_model_overwrite_redraws_each_layers_own_initialisers():
    net = make_net()
    net.add_hidden(6, init=Constant(0.2))
    net.add_nonlinearity(nn.prelu)
    net.add_logistic()
    with torch.no_grad():
        for p in net.module.parameters():
            p.add_(1.0)
        bn = net.layers[2].module
        bn.running_mean.fill_(3.0)
    before = net.layers[2].module.weight.clone()
    assert net.init_model(overwrite=True) is True
    assert torch.equal(net.layers[1].W, torch.full((6, 64), 0.2))
    assert torch.equal(bn.running_mean, torch.zeros(6)) and torch.equal(bn.bias, torch.zeros(6))
    assert 0.95 <= bn.weight.min() and bn.weight.max() <= 1.05      # pydnn's scale, redrawn
    assert not torch.equal(bn.weight, before)
    assert torch.equal(net.layers[4].params['slopes'], torch.full((6,), 0.25))
    assert torch.equal(net.layers[5].b, torch.zeros(3))
    assert torch.equal(net.layers[5].W, torch.zeros(3, 6))       # the zero classifier again


def tiny_training(net, **options):
    net.train(nn.StochasticGradientDescent(learning_rate=1e-12), epochs=1, verbose=False,
              **options)


def test_training_keeps_initialised_weights_unless_force_init(tmp_path):
    net = make_net(output_dir=str(tmp_path))
    net.add_hidden(6)
    net.add_logistic()
    net.init_model(Gaussian(scale=0.5))
    chosen = parameters(net)
    tiny_training(net)
    assert net.initialized
    assert all(torch.allclose(v, chosen[k], atol=1e-6) for k, v in parameters(net).items())
    tiny_training(net, force_init=True)
    assert net.layers[1].W.std().item() < 0.4           # redrawn by He, not Gaussian(0.5)
    assert not torch.allclose(net.layers[1].W, chosen['layers.n1.weight'], atol=1e-3)


def test_loaded_and_set_nets_count_as_initialised_but_undo_does_not(tmp_path):
    net = make_net()
    net.add_hidden(6)
    net.undo()
    assert not net.initialized
    net.add_logistic()
    loaded = nn.load(nn.save(net, str(tmp_path / 'n.pt')))
    assert loaded.initialized
    net.set_params(net.get_params())
    assert net.initialized


def test_initialisers_survive_save_load_undo_andreplay(tmp_path):
    net = make_net()
    net.add_hidden(6, batch_normalize=False, init=Uniform(-0.1, 0.1), bias=Constant(0.2))
    net.add_logistic(init=GlorotUniform())
    assert net.calls[0]['args']['init'] == {'initializer': 'Uniform', 'low': -0.1, 'high': 0.1}
    loaded = nn.load(nn.save(net, str(tmp_path / 'n.pt')))
    assert loaded.calls == net.calls
    assert all(torch.equal(v, parameters(net)[k]) for k, v in parameters(loaded).items())
    net.undo()
    assert torch.equal(net.layers[-2].b, torch.full((6,), 0.2))
    copy = make_net()
    copy.replay(net.calls)
    assert copy.layers[1].W.abs().max().item() <= 0.1


def test_get_description_is_plain_data_with_one_entry_per_node():
    net = make_net(extra={'seq': (5, 4)})
    net.add_convolution(2, (3, 3), (2, 2), init=Kaiming())
    seq = net.new_pathway('seq')
    seq.add_lstm(3)
    seq.add_recurrent_last()
    net.merge_pathways(seq)
    net.add_logistic()
    description = net.get_description()
    json.dumps(description)                                      # plain data only
    layers = description['model']['config']['layers']
    assert len(layers) == len(net.nodes)
    assert [entry['type'] for entry in layers] == [n.op for n in net.nodes]
    assert [entry['config'] for entry in layers] == [n.args for n in net.nodes]
    assert layers[1]['config']['init'] == {'initializer': 'Kaiming'}
    assert layers[1]['call'] == 'add_convolution' and layers[1]['out_shape'] == (2, 3, 3)
    assert all('params' not in entry for entry in layers)
    assert description['model']['config']['num_classes'] == 3
    assert description['calls'] == net.calls


def test_get_description_weights_equal_the_modules_parameters():
    net = make_net(extra={'seq': (5, 4)})
    net.add_convolution(2, (3, 3), (2, 2))
    seq = net.new_pathway('seq')
    seq.add_gru(3)
    seq.add_recurrent_sum()
    net.merge_pathways(seq)
    net.add_logistic()
    layers = net.get_description(get_weights=True)['model']['config']['layers']
    conv = net.module.layers['n1'].conv
    assert isinstance(layers[1]['params']['W'], np.ndarray)
    assert np.array_equal(layers[1]['params']['W'], conv.weight.detach().numpy())
    bn = net.module.layers['n2']
    assert np.array_equal(layers[2]['params']['gamma'], bn.weight.detach().numpy())
    assert np.array_equal(layers[2]['params']['running_var'], bn.running_var.numpy())
    gru = net.module.layers['n5'].rnn
    assert np.array_equal(layers[5]['params']['W_recur'], gru.weight_hh_l0.detach().numpy())
    assert layers[0]['params'] == {} and layers[4]['params'] == {}
    total = sum(v.size for entry in layers for k, v in entry['params'].items()
                if k not in ('running_mean', 'running_var', 'num_batches_tracked'))
    assert total == sum(p.numel() for p in net.module.parameters())


def test_net_layers_expose_live_parameters():
    net = make_net()
    net.add_hidden(5, batch_normalize=False)
    net.add_logistic()
    layer = net.layers[1]
    assert (layer.index, layer.type, layer.call) == (1, 'fc', 'add_hidden')
    fc = net.module.layers['n1']
    assert layer.W.data_ptr() == fc.weight.data_ptr() and not layer.W.requires_grad
    assert torch.equal(layer.b, fc.bias)
    assert net.layers[0].W is None and net.layers[0].module is None
    assert 'W (5, 64)' in repr(layer) and 'add_hidden' in repr(layer)
    assert isinstance(net.layers[1], type(net.layers[2]))
    assert issubclass(Constant, Initializer)
