"""TensorBoardLogger read back with tensorboard's EventAccumulator: every scalar of every
epoch equals net.history; the layer table and the end figures are there; a resumed
run's epochs replace what the interrupted run logged after its checkpoint."""

import sys

import numpy as np
import pytest

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, MissingDependencyError
from pydnn2.evaluate import Accuracy
from pydnn2.track import TensorBoardLogger, scalar_tag
from tensorboard_events import load_events, scalars_by_tag


def expected_scalars(history, momentum=None):
    """What the logger should have written for ``history``: ``{tag: [(epoch, float32)]}``."""
    expected = {}
    for key, values in history.items():
        if key in ('epoch', 'phase'):
            continue
        series = [(e, np.float32(v)) for e, v in zip(history['epoch'], values) if v is not None]
        if series:
            expected[scalar_tag(key)] = series
    if momentum is not None:
        expected['rule/momentum'] = [(e, np.float32(momentum)) for e in history['epoch']]
    return expected


@pytest.mark.slow
def test_every_scalar_of_every_epoch_equals_the_history(small_net, tmp_path):
    net = small_net()
    history = net.train(nn.Momentum(0.5, 0.9, 0.05), epochs=3, final_epochs=1,
                        eval_metric=Accuracy(), callbacks=[TensorBoardLogger(tmp_path / 'tb')])
    assert scalars_by_tag(tmp_path / 'tb') == expected_scalars(history, momentum=0.5)
    events = load_events(tmp_path / 'tb')
    assert sorted(events.Tags()['images']) == ['end/confusion', 'end/mistakes']
    image = events.Images('end/confusion')[0]
    assert image.step == 4 and image.width > 100 and image.height > 100
    text = events.Tensors('net/layers/text_summary')[0].tensor_proto.string_val[0].decode()
    assert 'add_convolution' in text and 'logistic 10' in text


def test_a_resumed_run_replaces_the_epochs_after_its_checkpoint(small_net, tmp_path):
    net = small_net(name='again')
    net.train(nn.Adam(0.01), epochs=4, checkpoint_every=2,
              callbacks=[TensorBoardLogger(tmp_path / 'tb', figures=False)])
    net = small_net(name='again')        # the same net trained again from epoch 2's checkpoint
    history = net.train(nn.Adam(0.01), epochs=4, resume=tmp_path / 'again_checkpoint_0002.pt',
                        callbacks=[TensorBoardLogger(tmp_path / 'tb', figures=False)])
    scalars = scalars_by_tag(tmp_path / 'tb')
    assert [s for s, _ in scalars['loss/train']] == [1, 2, 3, 4]
    assert scalars == expected_scalars(history)


class Explodes(nn.Callback):
    def on_epoch_end(self, net, logs):
        if logs['epoch'] == 3:
            raise RuntimeError('the data went away')


def test_a_run_that_raises_closes_its_event_file_with_the_epochs_before(small_net, tmp_path):
    logger = TensorBoardLogger(tmp_path / 'tb')
    with pytest.raises(RuntimeError, match='the data went away'):
        small_net().train(nn.Adam(0.01), epochs=5, callbacks=[logger, Explodes()])
    assert logger._writer is None                     # closed: its events are on disk
    scalars = scalars_by_tag(tmp_path / 'tb')
    assert [s for s, _ in scalars['loss/train']] == [1, 2, 3]
    assert 'images' not in load_events(tmp_path / 'tb').Tags() or \
        not load_events(tmp_path / 'tb').Tags()['images']    # no end figures after a failure


def test_bad_arguments_and_a_missing_tensorboard_are_named(small_net, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match='log_dir must be a file or folder path'):
        TensorBoardLogger('')
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    with pytest.raises(MissingDependencyError, match=r'needs tensorboard.*pydnn2\[track\]'):
        small_net().train(nn.Adam(0.01), epochs=1, callbacks=[TensorBoardLogger(tmp_path)])
