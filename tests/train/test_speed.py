"""Speed options of train(): mixed precision, channels_last, streaming from host
memory, torch.compile, and best-net files written in the background."""

import os

import numpy as np
import pytest
import torch

from pydnn2 import data, files, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError


@pytest.fixture(scope='module')
def sets():
    images, classes, files = data.load_digits()
    return preprocess.split_training_data((images[:400], classes[:400], files[:400]), 16,
                                          60, 20, 20)


def build(sets, folder, dropout=0.2):
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 16, 3, verbose=False,
                output_dir=str(folder))
    net.add_convolution(6, (3, 3), (2, 2))
    net.add_dropout(dropout)
    net.add_hidden(24)
    net.add_logistic()
    return net


def trained(sets, folder, dropout=0.2, **speed):
    net = build(sets, folder, dropout)
    history = net.train(nn.Adam(0.01), epochs=2, restore_best=False, **speed)
    return net, history


def test_streaming_batches_from_host_memory_learns_exactly_the_same(sets, tmp_path):
    resident, _ = trained(sets, tmp_path / 'a', data_on_device=True)
    streamed, _ = trained(sets, tmp_path / 'b', data_on_device=False)
    for (k, v), w in zip(resident.module.state_dict().items(),
                         streamed.module.state_dict().values()):
        assert torch.equal(v, w), k


def test_channels_last_learns_the_same_up_to_rounding(sets, tmp_path):
    # no dropout: its masks are drawn in memory order, which the layout changes
    plain, h1 = trained(sets, tmp_path / 'a', dropout=0)
    nhwc, h2 = trained(sets, tmp_path / 'b', dropout=0, channels_last=True)
    conv = [n.key for n in nhwc.nodes if n.op == 'conv_pool'][0]
    assert nhwc.module.layers[conv].conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert h2['train_loss'] == pytest.approx(h1['train_loss'], rel=1e-3)


def test_bf16_autocast_trains(sets, tmp_path):
    net, history = trained(sets, tmp_path, amp='bf16')
    assert history['valid_error'][-1] < 0.5
    assert all(p.dtype == torch.float32 for p in net.module.parameters())


def test_bad_amp_is_refused(sets, tmp_path):
    with pytest.raises(ConfigError, match="amp must be one of None, 'auto', 'bf16', 'fp16'"):
        build(sets, tmp_path).train(nn.Adam(0.01), epochs=1, amp='fp8')


def test_the_best_net_is_on_disk_when_train_returns(sets, tmp_path):
    net, history = trained(sets, tmp_path)
    best = nn.load(os.path.join(str(tmp_path), 'net_best_net.pt'))
    x = sets[1][0]
    assert np.allclose(best.predict(x)[1], net.predict(x)[1]) or \
        history['valid_loss'][-1] > min(history['valid_loss'])


def test_a_failed_background_write_is_reported(sets, tmp_path, monkeypatch):
    def broken(obj, path):
        raise OSError('disk full')

    monkeypatch.setattr(files, 'atomic_save', broken)
    with pytest.raises(OSError, match='disk full'):
        build(sets, tmp_path).train(nn.Adam(0.01), epochs=2)
