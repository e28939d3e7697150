"""The builder: eager shapes and errors of every add_* call, pathways, merges, undo."""

import math
import warnings

import numpy as np
import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError, NetBuildError
from pydnn2.preprocess import ArrayPreprocessor, split_training_data


def make_pre(shape=(1, 12, 12), n=120, extra=None, classes=4):
    rng = np.random.RandomState(0)
    x = {'images': rng.rand(n, *shape).astype(np.float32)}
    if extra:
        x.update({name: rng.rand(n, *s).astype(np.float32) for name, s in extra.items()})
    y = np.arange(n) % classes
    return ArrayPreprocessor(split_training_data((x, y), 8, 60, 20, 20))


def make_net(shape=(1, 12, 12), extra=None, **kwargs):
    kwargs.setdefault('verbose', False)
    return nn.NN(make_pre(shape, extra=extra), 'images', 4, 8, np.random.RandomState(1),
                 **kwargs)


def check_forward_shapes(net, batch=3):
    """Run the module and check every layer's output against its recorded shape."""
    seen = {}
    hooks = [net.module.layers[n.key].register_forward_hook(
        lambda m, i, o, key=n.key: seen.__setitem__(key, tuple(o.shape[1:])))
        for n in net.nodes if n.key in net.module.layers]
    channels = {n.args['channel'] for n in net.nodes if n.op == 'input'}
    x = {c: torch.randn(batch, *net.preprocessor.shape_for(c)) for c in channels}
    net.module.eval()
    out = net.module(x)
    for h in hooks:
        h.remove()
    for node in net.nodes:
        if node.key in seen:
            assert seen[node.key] == node.out_shape, node
    return out


def test_conv_pool_shape_follows_valid_convolution_and_floor_pooling():
    net = make_net((3, 13, 11))
    net.add_conv_pool(5, (4, 2), (3, 2), (2, 2))
    # conv: 13-4+1=10, 11-2+1=10; pool 3x2 stride 2: (10-3)//2+1=4, (10-2)//2+1=5
    assert net.output_shape == (5, 4, 5)
    conv = net.module.layers[net.nodes[-1].key].conv
    assert tuple(conv.weight.shape) == (5, 3, 4, 2) and conv.bias is not None
    assert check_forward_shapes(net).shape == (3, 5, 4, 5)


def test_conv_pool_default_stride_is_the_pool_shape():
    net = make_net()
    net.add_conv_pool(2, (3, 3), (2, 2))
    assert net.output_shape == (2, 5, 5)


def test_add_convolution_adds_conv_norm_and_activation_without_bias():
    net = make_net()
    net.add_convolution(6, (3, 3), (2, 2), activation=nn.tanh)
    ops = [n.op for n in net.nodes[1:]]
    assert ops == ['conv_pool', 'bn', 'act']
    assert net.nodes[-1].args['nonlinearity'] == 'tanh'
    assert net.module.layers[net.nodes[1].key].conv.bias is None
    plain = make_net()
    plain.add_convolution(6, (3, 3), (2, 2), batch_normalize=False)
    assert [n.op for n in plain.nodes[1:]] == ['conv_pool', 'act']
    assert plain.module.layers[plain.nodes[1].key].conv.bias is not None
    check_forward_shapes(net)


def test_fully_connected_flattens_maps_and_hidden_normalises():
    net = make_net((2, 4, 4))
    net.add_fully_connected(7, nn.relu, True)
    assert net.output_shape == (7,)
    assert tuple(net.module.layers[net.nodes[-1].key].weight.shape) == (7, 32)
    net.add_hidden(5, nn.sigmoid)
    assert [n.op for n in net.nodes[-3:]] == ['fc', 'bn', 'act']
    assert net.nodes[-1].args['nonlinearity'] == 'sigmoid'
    check_forward_shapes(net)


def test_nonlinearities_and_prelu_slopes_are_learned_per_channel():
    net = make_net((3, 6, 6))
    for fn in (nn.relu, nn.tanh, nn.sigmoid):
        net.add_nonlinearity(fn)
    net.add_nonlinearity(nn.prelu)
    prelu = net.module.layers[net.nodes[-1].key]
    assert prelu.weight.shape == (3,) and prelu.weight.requires_grad
    assert torch.allclose(prelu.weight, torch.full((3,), 0.25))
    out = prelu(torch.full((1, 3, 2, 2), -2.0))
    assert torch.allclose(out, torch.full((1, 3, 2, 2), -0.5))


def test_dropout_and_batch_norm_defaults():
    net = make_net()
    net.add_dropout()
    assert net.module.layers[net.nodes[-1].key].p == 0.5
    net.add_batch_normalization()
    assert net.module.layers[net.nodes[-1].key].eps == pytest.approx(1e-6)
    net.add_hidden(4)
    net.add_batch_normalization(epsilon=1e-3)
    assert net.module.layers[net.nodes[-1].key].eps == pytest.approx(1e-3)


def test_logistic_and_mlp_end_in_num_classes():
    net = make_net()
    net.add_mlp(16)
    assert net.output_shape == (4,)
    assert [n.op for n in net.nodes[1:]] == ['fc', 'bn', 'act', 'logistic']
    net.check_complete()
    assert check_forward_shapes(net).shape == (3, 4)


@pytest.mark.parametrize('call, message', [
    (lambda net: (net.add_hidden(10), net.add_convolution(4, (3, 3), (2, 2))),
     'add_convolution needs a (C, H, W) input; got (10,) from add_hidden'),
    (lambda net: net.add_conv_pool(4, (13, 3), (1, 1)), 'a 13x3 filter does not fit'),
    (lambda net: net.add_conv_pool(4, (3, 3), (11, 11)), 'a 11x11 pool does not fit'),
    (lambda net: net.add_conv_pool(0, (3, 3), (1, 1)), 'num_filters must be a positive'),
    (lambda net: net.add_conv_pool(4, (3, 3, 3), (1, 1)),
     'filter_shape must be a positive integer or a pair'),
    (lambda net: net.add_conv_pool(4, (3, -1), (1, 1)), 'filter_shape must be a positive'),
    (lambda net: net.add_hidden(-3), 'num_units must be a positive integer; received -3'),
    (lambda net: net.add_dropout(1.0), 'rate must be a number in [0, 1)'),
    (lambda net: net.add_batch_normalization(0), 'epsilon must be a number > 0'),
    (lambda net: net.add_nonlinearity('swish'), 'unknown nonlinearity'),
    (lambda net: net.add_hidden(3, activation=abs), 'unknown activation'),
    (lambda net: (net.add_logistic(), net.add_hidden(3)),
     'already ends in its final layer (logistic 4, added by add_logistic)'),
    (lambda net: net.split_pathways().add_logistic(), 'belongs on the main pathway'),
    (lambda net: net.merge_pathways([]), 'needs at least one other pathway'),
    (lambda net: net.merge_pathways(net), 'cannot merge pathway 0'),
    (lambda net: net.new_pathway('colour'), "unknown channel 'colour'"),
    (lambda net: net.merge_data_channel('sizes'), "unknown channel 'sizes'"),
    (lambda net: net.split_pathways(0), 'num must be a positive integer'),
])
def test_bad_builder_calls_raise_at_once_with_a_clear_message(call, message):
    net = make_net()
    with pytest.raises((NetBuildError, ConfigError, DataError)) as info:
        call(net)
    assert message in str(info.value)


def test_a_failed_call_adds_nothing():
    net = make_net()
    net.add_hidden(5)
    before = repr(net)
    keys = list(net.module.layers)
    with pytest.raises(NetBuildError):
        net.add_convolution(3, (2, 2), (1, 1))
    assert repr(net) == before and list(net.module.layers) == keys
    assert [c['method'] for c in net.calls] == ['add_hidden']


def test_split_pathways_are_real_branches_merged_along_channels():
    net = make_net((1, 12, 12))
    net.add_conv_pool(4, (3, 3), (1, 1))
    left, right = net.split_pathways(2)
    left.add_conv_pool(3, (3, 3), (1, 1))
    right.add_conv_pool(5, (3, 3), (1, 1))
    net.add_conv_pool(2, (3, 3), (1, 1))
    net.merge_pathways([left, right])
    assert net.output_shape == (2 + 3 + 5, 8, 8)
    assert net.nodes[-1].args['mode'] == 'channels'
    net.add_logistic()
    out = check_forward_shapes(net)
    out.sum().backward()
    for node in net.nodes:
        if node.op == 'conv_pool':
            assert net.module.layers[node.key].conv.weight.grad is not None, node
    # no parameter is shared between pathways
    ptrs = [p.data_ptr() for p in net.module.parameters()]
    assert len(ptrs) == len(set(ptrs))


def test_merge_of_different_shapes_flattens_and_a_data_channel_merges():
    net = make_net((1, 8, 8), extra={'shapes': (2,)})
    net.add_conv_pool(3, (3, 3), (2, 2))              # (3, 3, 3)
    net.merge_data_channel('shapes')
    assert net.output_shape == (3 * 3 * 3 + 2,)
    assert net.nodes[-1].args['mode'] == 'flat'
    net.add_logistic(init=nn.GlorotUniform())       # pydnn's zero classifier would hide it
    check_forward_shapes(net)
    # the shapes channel really feeds the output
    x = {'images': torch.zeros(1, 1, 8, 8), 'shapes': torch.zeros(1, 2)}
    y = {'images': torch.zeros(1, 1, 8, 8), 'shapes': torch.ones(1, 2)}
    net.module.eval()
    assert not torch.allclose(net.module(x), net.module(y))


def test_single_split_returns_one_pathway_and_new_pathway_starts_from_a_channel():
    net = make_net((1, 8, 8), extra={'shapes': (2,)})
    branch = net.split_pathways()
    assert isinstance(branch, nn.Pathway)
    sizes = net.new_pathway('shapes')
    sizes.add_hidden(6)
    branch.add_hidden(4)
    net.merge_pathways([branch, sizes])
    assert net.output_shape == (64 + 4 + 6,)


def test_pathway_misuse_is_refused():
    net = make_net()
    branch = net.split_pathways()
    with pytest.raises(NetBuildError, match='pathways \\[1\\] were never merged'):
        net.add_logistic()
        net.check_complete()
    net.undo()
    net.merge_pathways(branch)
    with pytest.raises(NetBuildError, match='already merged'):
        branch.add_hidden(3)
    with pytest.raises(NetBuildError, match='already merged'):
        net.merge_pathways(branch)
    other = make_net().split_pathways()
    with pytest.raises(NetBuildError, match='expected pathways of this net'):
        net.merge_pathways(other)


def test_check_complete_requires_an_output_layer():
    net = make_net()
    net.add_hidden(4)
    with pytest.raises(NetBuildError, match='no output layer'):
        net.check_complete()


def test_undo_removes_the_last_call_and_keeps_other_weights():
    net = make_net()
    net.add_convolution(4, (3, 3), (2, 2))
    first = {k: v.clone() for k, v in net.module.state_dict().items()}
    net.add_hidden(8)
    assert len(net.nodes) == 7
    assert net.undo().startswith('add_hidden(num_units=8')
    assert len(net.nodes) == 4 and net.output_shape == (4, 5, 5)
    now = net.module.state_dict()
    assert set(now) == set(first)
    assert all(torch.equal(now[k], first[k]) for k in first)
    net.undo()
    assert len(net.nodes) == 1
    with pytest.raises(NetBuildError, match='nothing to undo'):
        net.undo()


def test_undo_of_a_split_makes_its_pathway_stale():
    net = make_net()
    branch = net.split_pathways()
    net.undo()
    with pytest.raises(NetBuildError, match='no longer exists'):
        branch.add_hidden(3)


def test_rerunning_the_same_source_warns_but_a_loop_does_not():
    net = make_net()
    cell = compile('net.add_hidden(5)', '<cell-1>', 'exec')
    exec(cell, {'net': net})
    with pytest.warns(nn.RerunWarning, match='net.undo'):
        exec(compile('net.add_hidden(5)', '<cell-1>', 'exec'), {'net': net})
    loop = make_net()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        exec(compile('for _ in range(3):\n    net.add_hidden(5)', '<cell-2>', 'exec'),
             {'net': loop})
    assert len(loop.nodes) == 1 + 3 * 3


def test_repr_and_html_show_calls_and_shapes():
    net = make_net()
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_logistic()
    text = repr(net)
    assert 'add_convolution' in text and '(1, 12, 12) -> (4, 5, 5)' in text
    assert 'logistic 4' in text
    total = sum(p.numel() for p in net.module.parameters())
    assert f'total parameters: {total:,}' in text
    page = net._repr_html_()
    assert page.count('<tr>') == len(net.nodes) + 1 and 'add_logistic' in page


def test_verbose_prints_in_and_out_shapes(capsys):
    net = make_net(verbose=True)
    net.add_conv_pool(2, (3, 3), (2, 2))
    assert capsys.readouterr().out.strip() == 'add_conv_pool: (1, 12, 12) -> (2, 5, 5)'


def test_weight_initialisation_follows_the_activation_pydnns_way():
    net = make_net((1, 40, 40))
    net.add_fully_connected(400, nn.relu)
    layer = net.module.layers[net.nodes[-1].key]
    assert layer.weight.std().item() == pytest.approx(1 / math.sqrt(1600), rel=0.05)
    assert torch.equal(layer.bias, torch.ones(400))                   # pydnn's relu biases
    net.add_fully_connected(300, nn.tanh)
    layer = net.module.layers[net.nodes[-1].key]
    bound = math.sqrt(6 / (400 + 300))
    assert layer.weight.abs().max().item() <= bound
    assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert torch.equal(layer.bias, torch.zeros(300))
    net.add_fully_connected(200, nn.sigmoid)                          # Glorot times 4
    layer = net.module.layers[net.nodes[-1].key]
    assert layer.weight.abs().max().item() > bound
    assert layer.weight.std().item() == pytest.approx(
        4 * math.sqrt(6 / 500) / math.sqrt(3), rel=0.05)
    net.add_batch_normalization()
    gamma = net.module.layers[net.nodes[-1].key].weight
    assert 0.95 <= gamma.min().item() < gamma.max().item() <= 1.05
    net.add_logistic()
    assert not net.module.layers[net.nodes[-1].key].weight.any()     # a zero classifier


def test_he_glorot_initialization_is_one_keyword_away():
    net = make_net((1, 40, 40), initialization='he-glorot')
    net.add_fully_connected(400, nn.relu)
    layer = net.module.layers[net.nodes[-1].key]
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 1600), rel=0.05)
    assert not layer.bias.any()
    net.add_logistic()
    assert net.module.layers[net.nodes[-1].key].weight.abs().max() > 0
    with pytest.raises(ConfigError, match="initialization must be one of 'pydnn', 'he-glorot'"):
        make_net(initialization='xavier')


def test_same_rng_builds_the_same_weights():
    a, b = make_net(), make_net()
    for net in (a, b):
        net.add_convolution(3, (3, 3), (2, 2))
        net.add_mlp(6)
    for (k, v), (k2, v2) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_replaying_recorded_calls_rebuilds_the_same_graph():
    net = make_net((1, 8, 8), extra={'shapes': (2,)})
    net.add_convolution(3, (3, 3), (2, 2))
    branch = net.split_pathways()
    branch.add_conv_pool(2, (1, 1), (1, 1))
    net.merge_pathways(branch)
    net.merge_data_channel('shapes')
    net.add_mlp(5, nn.prelu)
    copy = make_net((1, 8, 8), extra={'shapes': (2,)})
    copy.replay(net.calls)
    assert repr(copy).splitlines()[1:] == repr(net).splitlines()[1:]


def test_activation_functions_work_on_plain_numbers():
    assert nn.relu(-0.5) == 0 and nn.relu(2.5) == 2.5
    assert nn.sigmoid(0) == 0.5
    assert nn.tanh(0.3) == pytest.approx(math.tanh(0.3))
    assert np.array_equal(nn.relu(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 2.0])
    assert nn.prelu() is None


def test_nn_constructor_checks_its_arguments():
    pre = make_pre()
    rng = np.random.RandomState(0)
    with pytest.raises(DataError, match="unknown channel 'pixels'"):
        nn.NN(pre, 'pixels', 4, 8, rng)
    with pytest.raises(ConfigError, match='num_classes must be an integer >= 2'):
        nn.NN(pre, 'images', 1, 8, rng)
    with pytest.raises(ConfigError, match='batch_size must be a positive integer'):
        nn.NN(pre, 'images', 4, 0, rng)
    with pytest.raises(DataError, match='batch_size 500 is larger than the training set'):
        nn.NN(pre, 'images', 4, 500, rng)
    with pytest.raises(DataError,
                       match='labels outside num_classes.*class 3 but num_classes is 3'):
        nn.NN(pre, 'images', 3, 8, rng)
    with pytest.raises(ConfigError, match='rng must be'):
        nn.NN(pre, 'images', 4, 8, 'seed')
    with pytest.raises(ConfigError, match='unknown activation'):
        nn.NN(pre, 'images', 4, 8, rng, activation='gelu')
