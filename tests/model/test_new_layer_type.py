"""A layer type defined in this file alone builds, prints, sizes, describes, trains,
saves and loads: one spec class is all pydnn2 needs to know about a layer."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pydnn2 import files
from pydnn2 import neuralnet as pnn
from pydnn2.errors import FileFormatError, NetBuildError
from pydnn2.model.initializers import ParamInit
from pydnn2.model.layers import Cost, LayerSpec


class ScaleModule(nn.Module):
    """Multiplies each feature by a learned factor."""

    def __init__(self, features):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(features))

    def forward(self, x):
        return x * self.scale          # (B, F) * (F,)


class Scale(LayerSpec):
    """A learned factor per feature of a vector, starting at ``start``."""

    op = 'test_scale'
    param_names = {'scale': 'gamma'}

    def __init__(self, start=1.0):
        super().__init__(start=start)

    def output_shape(self, incoming, call):
        self.expect(incoming, call, 1, '(N,)')
        self.check(call, 'start', 'number', above=0)
        return incoming[0].shape

    def make_module(self, incoming):
        return ScaleModule(incoming[0].shape[0])

    def init_plan(self, incoming):
        return [ParamInit('scale', {'initializer': 'Constant', 'val': self.args['start']},
                          1, 1)]

    def describe(self):
        return f"scale from {self.args['start']}"

    def cost(self, incoming, out_shape):
        return Cost(math.prod(out_shape), 0)


def build(small_net, start=0.5):
    net = small_net(build=False)
    net.add_hidden(16)
    net.add(Scale(start))
    net.add_logistic()
    return net


def test_it_builds_with_its_shape_and_initial_weights(small_net):
    net = build(small_net)
    node = net.nodes[-2]
    assert (node.op, node.out_shape, node.call) == ('test_scale', (16,), 'add')
    assert torch.equal(net.module.layers[node.key].scale, torch.full((16,), 0.5))
    assert net.calls[1] == {'pathway': 0, 'method': 'add',
                            'args': {'layer': {'layer': 'test_scale', 'start': 0.5}}}


def test_its_checks_fail_at_the_call(small_net):
    net = small_net(build=False)
    with pytest.raises(NetBuildError, match=r'add needs a \(N,\) input; got \(1, 8, 8\)'):
        net.add(Scale())
    net.add_hidden(4)
    with pytest.raises(NetBuildError, match='add: start must be a number > 0; received -1'):
        net.add(Scale(-1))
    with pytest.raises(NetBuildError, match='add needs a layer spec'):
        net.add('scale')
    assert len(net.nodes) == 4


def test_it_prints_sizes_and_describes(small_net):
    net = build(small_net)
    assert 'scale from 0.5' in repr(net) and 'scale from 0.5' in net._repr_html_()
    row = net.net_size(calibrate=False, verbose=False).rows[-2]
    assert (row['mults'], row['adds'], row['params']) == (16, 0, 16)
    layer = net.get_description(get_weights=True)['model']['config']['layers'][-2]
    assert layer['type'] == 'test_scale' and layer['config'] == {'start': 0.5}
    assert np.array_equal(layer['params']['gamma'], np.full(16, 0.5, np.float32))
    assert net.layers[-2].params['gamma'].shape == (16,)


def test_it_trains_saves_and_loads(small_net, tmp_path):
    net = build(small_net)
    net.train(pnn.Adam(0.01), epochs=2, verbose=False)
    scale = net.module.layers[net.nodes[-2].key].scale
    assert not torch.equal(scale, torch.full((16,), 0.5))        # it learned
    assert net.evaluate('test', pnn.Accuracy()) > 0.5
    loaded = pnn.load(pnn.save(net, tmp_path / 'scaled.pt'))
    assert loaded.nodes[-2].op == 'test_scale' and repr(loaded) == repr(net)
    x = net.preprocessor.get_raw_x()[2]
    np.testing.assert_array_equal(loaded.predict(x)[1], net.predict(x)[1])
    assert net.undo().startswith('add_logistic') and net.undo().startswith('add(')
    assert net.output_shape == (16,)


def test_a_file_naming_an_unknown_layer_type_is_refused(small_net, tmp_path):
    net = build(small_net)
    path = pnn.save(net, tmp_path / 'scaled.pt')
    state = torch.load(path, weights_only=True)
    state['calls'][1]['args']['layer']['layer'] = 'no_such_layer'
    torch.save(files.sealed(state), path)            # sealed again, as a crafted file would be
    with pytest.raises(FileFormatError, match="unknown layer type 'no_such_layer'"):
        pnn.load(path)
