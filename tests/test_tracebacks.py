"""Builder errors end at the user's line: pydnn2's frames are cut from their
tracebacks, unless set_traceback_filtering(False)."""

import os
import traceback

import numpy as np
import pytest

import pydnn2
from pydnn2 import neuralnet as nn
from pydnn2.errors import DataError, NetBuildError
from pydnn2.model.layers import LayerSpec
from pydnn2.preprocess import ArrayPreprocessor, split_training_data

PACKAGE = os.path.dirname(os.path.abspath(pydnn2.__file__)) + os.sep
RERAISE = os.path.join(PACKAGE, 'model', 'recording.py')


class Refuses(LayerSpec):
    """A user's layer type whose shape check refuses every input."""

    op = 'test_tracebacks_refuses'

    def output_shape(self, incoming, call):
        raise NetBuildError(f'{call}: this layer refuses everything')


class Breaks(LayerSpec):
    """A user's layer type with a bug."""

    op = 'test_tracebacks_breaks'

    def output_shape(self, incoming, call):
        raise RuntimeError('a bug in the layer')


@pytest.fixture
def filtering():
    """Restores the setting after the test."""
    previous = pydnn2.set_traceback_filtering(True)
    yield
    pydnn2.set_traceback_filtering(previous)


@pytest.fixture
def net():
    x = {'images': np.random.rand(80, 1, 8, 8).astype(np.float32)}
    pre = ArrayPreprocessor(split_training_data((x, np.arange(80) % 4), 8, 60, 20, 20))
    net = nn.NN(pre, 'images', 4, 8, 0, verbose=False, device='cpu')
    net.add_hidden(16)
    return net


def frames(exc_info):
    return traceback.extract_tb(exc_info.value.__traceback__)


def internal(frame_list):
    return [f for f in frame_list if os.path.abspath(f.filename).startswith(PACKAGE)]


def test_a_builder_mistake_ends_at_the_users_line(filtering, net):
    with pytest.raises(NetBuildError, match=r'needs a \(C, H, W\) input; got \(16,\)') as info:
        net.add_convolution(4, (3, 3), (2, 2))
    stack = frames(info)
    assert stack[0].filename == __file__ and 'net.add_convolution(4' in stack[0].line
    # nothing of pydnn2 but the wrapper's raise, which Python adds as the error leaves it
    assert internal(stack) == [stack[-1]] and len(stack) == 2
    assert stack[-1].filename == RERAISE and 'raise exc.with_traceback' in stack[-1].line
    text = ''.join(traceback.format_exception(info.value))
    assert 'builder.py' not in text and 'graph.py' not in text and 'layers' not in text
    assert text.rstrip().endswith('got (16,) from add_hidden')


def test_off_the_whole_traceback_is_kept(filtering, net):
    assert pydnn2.set_traceback_filtering(False) is True
    with pytest.raises(NetBuildError) as info:
        net.add_convolution(4, (3, 3), (2, 2))
    files = {os.path.relpath(f.filename, PACKAGE) for f in internal(frames(info))}
    assert {os.path.join('model', 'builder.py'), os.path.join('model', 'graph.py'),
            os.path.join('model', 'layers', 'base.py')} <= files
    assert pydnn2.set_traceback_filtering(True) is False
    with pytest.raises(NetBuildError) as info:
        net.add_convolution(4, (3, 3), (2, 2))
    assert len(internal(frames(info))) == 1


def test_every_pydnn2_error_of_a_builder_call_is_filtered(filtering, net):
    with pytest.raises(DataError, match="unknown channel 'colour'") as info:
        net.new_pathway('colour')
    assert len(internal(frames(info))) == 1
    branch = net.split_pathways()
    with pytest.raises(NetBuildError, match='belongs on the main pathway') as info:
        branch.add_logistic()
    assert len(internal(frames(info))) == 1


def test_the_users_own_code_inside_the_call_stays(filtering, net):
    with pytest.raises(NetBuildError, match='refuses everything') as info:
        net.add(Refuses())
    stack = frames(info)
    names = [f.name for f in stack]
    assert names == ['test_the_users_own_code_inside_the_call_stays', 'wrapper',
                     'output_shape']
    assert stack[-1].filename == __file__


def test_other_errors_keep_their_whole_traceback(filtering, net):
    with pytest.raises(RuntimeError, match='a bug') as info:
        net.add(Breaks())
    assert len(internal(frames(info))) > 2


class Wraps(LayerSpec):
    """A user's layer type that explains a lower error."""

    op = 'test_tracebacks_wraps'

    def output_shape(self, incoming, call):
        try:
            {}['size']
        except KeyError as exc:
            raise NetBuildError(f'{call}: no size') from exc


def test_the_net_is_unchanged_and_the_cause_kept(filtering, net):
    before = repr(net)
    with pytest.raises(NetBuildError) as info:
        net.add_convolution(4, (3, 3), (2, 2))
    assert repr(net) == before
    with pytest.raises(NetBuildError, match='no size') as info:
        net.add(Wraps())
    assert isinstance(info.value.__cause__, KeyError) and repr(net) == before
    net.add_logistic()
    assert net.output_shape == (4,)
