"""Tests of pydnn2.size: net_size on spec tuples and NN.net_size on built nets.

References: numbers worked out by hand in the comments, torch modules built
here (parameter counts from ``numel``, output shapes from a forward pass,
multiplications from ``torch.utils.flop_counter``, which counts two flops
per multiply-add), and the net's own ``module.parameters()``.
"""

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import pydnn2
from pydnn2 import neuralnet as pnn
from pydnn2.errors import ConfigError
from pydnn2.model.size import SizeReport, net_size

# -- net_size on pydnn spec tuples ---------------------------------------------------------

# (root, layers, expected rows as (output_shape, params, mults, pool_loss)), by hand:
HAND = [
    # conv 8 of 3x3 over (3, 9, 9): map 7x7, pool 2x2/2 -> 3x3 losing 1 row and 1 col;
    # params 8*3*3*3 + 8 = 224, mults 8*3*3*3 * 7*7 = 10,584.
    # full 10 over 8*3*3 = 72: mults 720, params 730.
    ((3, 9, 9),
     [('conv', {'filter': (8, 3, 3), 'pool': (2, 2)}), ('full', {'num': 10})],
     [((8, 3, 3), 224, 10584, (1, 1)), ((10,), 730, 720, None)]),
    # conv 16 of 5x5 over (1, 28, 28): map 24x24, pool 2x2 -> 12x12, nothing lost;
    # params 16*25 + 16 = 416, mults 16*25 * 576 = 230,400.
    # conv 32 of 3x3 over (16, 12, 12): map 10x10, pool 3x3 stride 2 -> (10-3)//2+1 = 4,
    # loses (10-3) % 2 = 1 row and col; params 32*16*9 + 32 = 4,640, mults 4,608*100.
    # full 100 over 32*4*4 = 512: mults 51,200, params 51,300. full 10: 1,000 and 1,010.
    ((1, 28, 28),
     [('conv', {'filter': (16, 5, 5), 'pool': (2, 2)}),
      ('conv', {'filter': (32, 3, 3), 'pool': (3, 3), 'pool_stride': (2, 2)}),
      ('full', {'num': 100}), ('full', {'num': 10})],
     [((16, 12, 12), 416, 230400, None), ((32, 4, 4), 4640, 460800, (1, 1)),
      ((100,), 51300, 51200, None), ((10,), 1010, 1000, None)]),
    # rectangular: conv 5 of 3x2 over (2, 10, 7): map 8x6, pool 2x3 -> 4x2, nothing lost;
    # params 5*2*3*2 + 5 = 65, mults 60 * 48 = 2,880. full 3 over 40: 120 and 123.
    ((2, 10, 7),
     [('conv', {'filter': (5, 3, 2), 'pool': (2, 3)}), ('full', {'num': 3})],
     [((5, 4, 2), 65, 2880, None), ((3,), 123, 120, None)]),
    # pool 1x1 keeps the 7x7 map; overlapping 3x3/1 pools on it -> 5x5 with no loss.
    ((1, 9, 9),
     [('conv', {'filter': (2, 3, 3), 'pool': (1, 1)}),
      ('conv', {'filter': (4, 1, 1), 'pool': (3, 3), 'pool_stride': (1, 1)})],
     [((2, 7, 7), 20, 882, None), ((4, 5, 5), 12, 392, None)]),
]


@pytest.mark.parametrize('root, layers, expected', HAND)
def test_spec_rows_match_hand_computed_values(root, layers, expected):
    report = net_size(root, layers, calibrate=False, verbose=False)
    assert isinstance(report, SizeReport)
    got = [(r['output_shape'], r['params'], r['mults'], r['pool_loss']) for r in report.rows]
    assert got == expected
    assert [r['adds'] for r in report.rows] == [e[2] for e in expected]  # one add per mult


@pytest.mark.parametrize('root, layers, expected', HAND)
def test_spec_totals_are_the_sums_of_the_rows(root, layers, expected):
    report = net_size(root, layers, calibrate=False, verbose=False)
    assert report.total_params == sum(e[1] for e in expected)
    assert report.total_mults == sum(e[2] for e in expected)
    assert report.total_adds == sum(r['adds'] for r in report.rows)


def conv_params(filters, channels, fh, fw):
    return filters * channels * fh * fw + filters       # weights with the channel factor + biases


def conv_mults(filters, channels, fh, fw, map_h, map_w):
    return filters * channels * fh * fw * map_h * map_w


@pytest.mark.parametrize('channels', [1, 3, 7])
def test_conv_rows_include_the_input_channel_factor(channels):
    report = net_size((channels, 12, 10), [('conv', {'filter': (6, 3, 5), 'pool': (2, 2)})],
                      calibrate=False, verbose=False)
    row, = report.rows
    assert row['params'] == conv_params(6, channels, 3, 5)
    assert row['mults'] == conv_mults(6, channels, 3, 5, 10, 6)
    assert row['output_shape'] == (6, 5, 3)


def torch_equivalent(root, layers):
    """The spec as a torch Sequential, and for each spec layer its last module's index."""
    modules, ends, shape = [], [], root
    for kind, spec in layers:
        if kind == 'conv':
            filters, fh, fw = spec['filter']
            modules += [nn.Conv2d(shape[0], filters, (fh, fw)),
                        nn.MaxPool2d(spec['pool'], spec.get('pool_stride') or spec['pool'])]
        else:
            modules += [nn.Flatten(), nn.Linear(math.prod(shape), spec['num'])]
        ends.append(len(modules) - 1)
        shape = tuple(nn.Sequential(*modules)(torch.zeros(1, *root)).shape[1:])
    return nn.Sequential(*modules), ends


SPECS = [(root, layers) for root, layers, _ in HAND] + [
    ((3, 32, 32), [('conv', {'filter': (12, 5, 5), 'pool': (3, 3), 'pool_stride': (2, 2)}),
                   ('conv', {'filter': (20, 4, 3), 'pool': (2, 2)}),
                   ('full', {'num': 64}), ('full', {'num': 7})]),
    ((4, 15, 11), [('conv', {'filter': (3, 2, 4), 'pool': (4, 2), 'pool_stride': (3, 3)}),
                   ('full', {'num': 5})]),
]


@pytest.mark.parametrize('root, layers', SPECS)
def test_spec_matches_an_equivalent_torch_network(root, layers):
    report = net_size(root, layers, calibrate=False, verbose=False)
    module, ends = torch_equivalent(root, layers)
    assert report.total_params == sum(p.numel() for p in module.parameters())
    outputs = []
    hooks = [module[i].register_forward_hook(lambda m, i, o: outputs.append(o.shape[1:]))
             for i in ends]
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *root))
    for hook in hooks:
        hook.remove()
    assert [r['output_shape'] for r in report.rows] == [tuple(s) for s in outputs]
    flops = counter.get_flop_counts()
    for row, end, (kind, _) in zip(report.rows, ends, layers):
        weighted = module[end - 1] if kind == 'conv' else module[end]
        index = list(module).index(weighted)
        assert row['mults'] == sum(flops[f'Sequential.{index}'].values()) // 2
        assert row['params'] == sum(p.numel() for p in weighted.parameters())


@pytest.mark.parametrize('root, layers', SPECS)
def test_pool_loss_counts_the_rows_and_columns_no_pool_covers(root, layers):
    report = net_size(root, layers, calibrate=False, verbose=False)
    shape = root
    for row, (kind, spec) in zip(report.rows, layers):
        if kind == 'conv':
            _, fh, fw = spec['filter']
            map_h, map_w = shape[1] - fh + 1, shape[2] - fw + 1
            (ph, pw), (sh, sw) = spec['pool'], spec.get('pool_stride') or spec['pool']
            _, out_h, out_w = row['output_shape']
            # the last pool ends at (out - 1) * stride + pool; the rest of the map is lost
            lost = (map_h - ((out_h - 1) * sh + ph), map_w - ((out_w - 1) * sw + pw))
            assert row['pool_loss'] == (lost if any(lost) else None)
        else:
            assert row['pool_loss'] is None
        shape = row['output_shape']


def test_a_7x7_map_pooled_2x2_loses_one_row_and_one_column():
    report = net_size((1, 9, 9), [('conv', {'filter': (1, 3, 3), 'pool': (2, 2)})],
                      calibrate=False, verbose=False)
    assert report.rows[0]['pool_loss'] == (1, 1)
    assert report.rows[0]['output_shape'] == (1, 3, 3)
    even = net_size((1, 8, 8), [('conv', {'filter': (1, 3, 3), 'pool': (2, 2)})],
                    calibrate=False, verbose=False)
    assert even.rows[0]['pool_loss'] is None            # a 6x6 map pools without loss


def test_report_text_lists_every_layer_and_the_totals(capsys):
    root, layers, _ = HAND[1]
    report = net_size(root, layers, calibrate=False, verbose=True)
    printed = capsys.readouterr().out
    text = str(report)
    assert printed.strip() == text.strip()
    lines = text.splitlines()
    for i, row in enumerate(report.rows):
        line = lines[1 + i]
        assert line.startswith(row['layer'])
        assert f'{row["params"]:,}' in line and f'{row["mults"]:,}' in line
        assert str(row['output_shape']) in line
    assert 'total' in text and f'{report.total_params:,}' in text
    assert '(1, 1)' in lines[2]                          # the second conv's pool loss
    assert 'estimated time' not in text                 # not calibrated


def test_memory_grows_with_the_batch_size():
    root, layers, _ = HAND[0]
    small = net_size(root, layers, batch_size=16, calibrate=False, verbose=False)
    large = net_size(root, layers, batch_size=256, calibrate=False, verbose=False)
    # at least weights + gradients, in float32
    assert small.memory_bytes >= 2 * 4 * small.total_params
    assert large.memory_bytes > small.memory_bytes


def test_calibration_estimates_a_positive_epoch_time():
    root, layers, _ = HAND[0]
    report = net_size(root, layers, batch_size=32, epoch_size=500, calibrate=True,
                      device='cpu', verbose=False)
    assert report.seconds_per_sample > 0
    assert report.epoch_size == 500
    assert report.seconds_per_epoch == pytest.approx(report.seconds_per_sample * 500)
    assert report.device == 'cpu'
    assert 'estimated time per epoch of 500 rows on cpu' in str(report)


@pytest.mark.parametrize('root, layers', [
    ((8, 8), [('full', {'num': 10})]),
    ((1, 1, 8, 8), [('full', {'num': 10})]),
    ((1, 8, 8), [('pool', {'pool': (2, 2)})]),
    ((1, 8, 8), [('conv', {'filter': (4, 9, 3), 'pool': (1, 1)})]),
    ((1, 8, 8), [('conv', {'filter': (4, 3, 3), 'pool': (7, 2)})]),
    ((1, 8, 8), [('conv', {'filter': (4, 3, 3), 'pool': (2, 2)}),
                 ('conv', {'filter': (4, 3, 3), 'pool': (2, 2)})]),       # 3x3 -> 1x1 map
])
def test_specs_that_do_not_fit_raise_config_error(root, layers):
    with pytest.raises(ConfigError):
        net_size(root, layers, calibrate=False, verbose=False)



@pytest.mark.parametrize('layers', [
    [('conv',)],
    [('conv', {'pool': (2, 2)})],
    [('full', {})],
    [('full', {'num': -5})],
    [('full', {'num': 2.5})],
    [('conv', {'filter': (-2, 3, 3), 'pool': (2, 2)})],
    [('conv', {'filter': (2, 0, 3), 'pool': (1, 1)})],
    [('conv', {'filter': (2, 3, 3), 'pool': (0, 0)})],
    [('full', {'num': 10}), ('conv', {'filter': (2, 3, 3), 'pool': (2, 2)})],
])
def test_malformed_specs_raise_config_error(layers):
    with pytest.raises(ConfigError):
        net_size((1, 8, 8), layers, calibrate=False, verbose=False)


# -- NN.net_size on built nets -------------------------------------------------------------

def build_plain(net):
    net.add_conv_pool(6, (3, 3), (2, 2))
    net.add_nonlinearity(pydnn2.relu)
    net.add_fully_connected(20)
    net.add_logistic()


def build_batch_norm(net):
    net.add_convolution(8, (3, 3), (1, 1))
    net.add_convolution(4, (2, 2), (2, 2), pool_stride=(1, 1))
    net.add_hidden(16)
    net.add_logistic()


def build_prelu(net):
    net.add_convolution(5, (3, 3), (2, 2), activation=pydnn2.prelu)
    net.add_dropout(0.2)
    net.add_hidden(12, activation=pydnn2.prelu, batch_normalize=False)
    net.add_mlp(8, activation=pydnn2.prelu)


def build_merged(net):
    left, right = net.split_pathways(2)
    net.add_convolution(4, (3, 3), (1, 1))                  # (4, 6, 6)
    left.add_convolution(3, (3, 3), (1, 1), activation=pydnn2.prelu)   # (3, 6, 6)
    right.add_hidden(7)                                    # (7,)
    net.merge_pathways([left, right])                      # flat: 144 + 108 + 7
    net.add_hidden(10, activation=pydnn2.tanh)
    net.add_logistic()


def build_odd_pool(net):
    net.add_conv_pool(3, (2, 2), (2, 2))                    # 7x7 map -> (3, 3, 3), loses 1, 1
    net.add_logistic()


NET_BUILDS = [build_plain, build_batch_norm, build_prelu, build_merged, build_odd_pool]


@pytest.mark.parametrize('build', NET_BUILDS, ids=lambda b: b.__name__)
def test_net_size_counts_the_module_parameters(small_net, build):
    net = small_net(build=build)
    report = net.net_size(calibrate=False, verbose=False)
    assert report.total_params == sum(p.numel() for p in net.module.parameters())
    assert report.total_params == sum(r['params'] for r in report.rows)
    table = [r for r in net.layer_table() if r['in_shape']]       # not the channel inputs
    assert [r['params'] for r in report.rows] == [r['params'] for r in table]


def test_net_size_counts_the_optimizer_state_of_the_rule_it_is_given(small_net):
    net = small_net()
    params = sum(p.numel() * p.element_size() for p in net.module.parameters())
    sizes = {name: net.net_size(calibrate=False, verbose=False, updater=rule).memory
             for name, rule in (('sgd', pnn.StochasticGradientDescent(0.1)),
                                ('momentum', pnn.Momentum(0.5, 0.9, 0.1)),
                                ('adam', pnn.Adam(0.01)), ('default', None))}
    assert (sizes['sgd'].optimizer, sizes['sgd'].step) == (0, 0)
    assert (sizes['momentum'].optimizer, sizes['momentum'].step) == (params, 0)
    assert (sizes['adam'].optimizer, sizes['adam'].step) == (2 * params, params)
    assert sizes['default'] == sizes['adam']
    assert sizes['adam'].total - sizes['sgd'].total == 3 * params
    with pytest.raises(ConfigError, match='updater must be a learning rule'):
        net.net_size(calibrate=False, verbose=False, updater='adam')


@pytest.mark.parametrize('build', NET_BUILDS, ids=lambda b: b.__name__)
def test_net_size_rows_match_the_module_run(small_net, build):
    """Output shapes from forward hooks; conv and dense mults from the flop counter."""
    net = small_net(build=build)
    report = net.net_size(calibrate=False, verbose=False)
    nodes = [n for n in net.nodes if n.op != 'input']
    assert len(report.rows) == len(nodes)
    shapes, hooks = {}, []
    for node in nodes:
        if node.key in net.module.layers:
            hooks.append(net.module.layers[node.key].register_forward_hook(
                lambda m, i, o, key=node.key: shapes.__setitem__(key, tuple(o.shape[1:]))))
    net.module.eval()
    with FlopCounterMode(display=False) as counter:
        net.module({'images': torch.zeros(1, 1, 8, 8)})
    for hook in hooks:
        hook.remove()
    flops = counter.get_flop_counts()
    for row, node in zip(report.rows, nodes):
        assert row['layer'] in str(report)
        if node.key in shapes:
            assert row['output_shape'] == shapes[node.key], row['layer']
        if node.op in ('conv_pool', 'fc', 'logistic'):
            counted = sum(flops[f'GraphModule.layers.{node.key}'].values()) // 2
            assert row['mults'] == counted, row['layer']


def test_net_size_reports_the_pool_loss_of_a_built_net(small_net):
    net = small_net(build=build_odd_pool)
    row = net.net_size(calibrate=False, verbose=False).rows[0]
    assert row['pool_loss'] == (1, 1) and row['output_shape'] == (3, 3, 3)


def test_net_size_of_a_two_channel_net(digits):
    """new_pathway from a second channel, merged flat: parameters still match the module."""
    import numpy as np
    from pydnn2.net import NN
    from pydnn2.preprocess import ArrayPreprocessor, split_training_data

    images, classes, files = digits
    extra = np.random.RandomState(0).standard_normal((len(classes), 5)).astype(np.float32)
    sets = split_training_data(({'images': images, 'extra': extra}, classes, files),
                               32, 60, 20, 20)
    net = NN(ArrayPreprocessor(sets), 'images', 10, 32, 0, verbose=False, device='cpu')
    net.add_convolution(4, (3, 3), (2, 2))
    side = net.new_pathway('extra')
    side.add_hidden(6)
    net.merge_pathways(side)
    net.merge_data_channel('extra')
    net.add_logistic()
    report = net.net_size(calibrate=False, verbose=False)
    assert report.total_params == sum(p.numel() for p in net.module.parameters())
    assert report.rows[-1]['params'] == (4 * 3 * 3 + 6 + 5) * 10 + 10


def test_net_size_calibrated_for_a_built_net(small_net, digits_sets):
    net = small_net()
    report = net.net_size(calibrate=True, verbose=False)
    assert report.seconds_per_epoch > 0 and report.seconds_per_sample > 0
    assert report.epoch_size == len(digits_sets[0][1])
    assert report.device == 'cpu'
