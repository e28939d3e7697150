"""train(channels_last=None), the default: the faster memory layout, chosen by timing
a few training steps in each on a copy of the module, once per net."""

import random

import numpy as np
import pytest
import torch

from conftest import make_small_net
from pydnn2 import neuralnet as nn
from pydnn2.model import layout
from pydnn2.model.timing import LayoutTiming
from pydnn2.train.config import Speed

NHWC = torch.channels_last


@pytest.fixture(autouse=True)
def no_earlier_choices(monkeypatch):
    """Each test starts with no layout measured in this process."""
    monkeypatch.setattr(layout, '_CHOSEN', {})


def fake_timer(monkeypatch, speedup):
    """Replace the measurement: channels-last ``speedup`` times as fast; returns the
    list of calls."""
    calls = []

    def time_layouts(module, make_batch, batch_size, device, budget, autocast):
        calls.append(batch_size)
        return LayoutTiming(1e-5 * speedup, 1e-5, speedup, 12)

    monkeypatch.setattr(layout, 'time_layouts', time_layouts)
    return calls


def two_convs(net):
    """Two convolutions: the second one's filters have several input channels (with one,
    as the first has, NCHW and channels-last order are the same)."""
    net.add_convolution(4, (3, 3), (1, 1))      # (1, 8, 8) -> (4, 6, 6)
    net.add_convolution(6, (3, 3), (2, 2))      # -> (6, 2, 2)
    net.add_logistic()


def conv_weight(net):
    """The second convolution's filters (6, 4, 3, 3)."""
    return net.module.layers[[n.key for n in net.nodes if n.op == 'conv_pool'][1]].conv.weight


def cnn(digits_sets, folder, **options):
    return make_small_net(digits_sets, folder, build=two_convs, **options)


def mlp(net):
    net.add_hidden(16)
    net.add_logistic()


def test_channels_last_is_the_default_where_it_is_faster(digits_sets, tmp_path, monkeypatch,
                                                          capsys):
    calls = fake_timer(monkeypatch, 1.6)
    net = cnn(digits_sets, tmp_path, verbose=True)
    net.train(nn.Adam(0.01), epochs=1)
    assert calls == [32]
    assert conv_weight(net).is_contiguous(memory_format=NHWC)
    assert net.memory_layout.channels_last and net.memory_layout.speedup == 1.6
    assert 'memory layout: channels-last (1.6x faster in 12 steps)' in capsys.readouterr().out


def test_nchw_stays_where_channels_last_is_not_clearly_faster(digits_sets, tmp_path,
                                                               monkeypatch):
    calls = fake_timer(monkeypatch, layout.MARGIN - 0.05)
    net = cnn(digits_sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=1)
    assert calls == [32] and not net.memory_layout.channels_last
    weight = conv_weight(net)
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=NHWC)


def test_a_net_without_convolutions_is_never_measured(digits_sets, tmp_path, monkeypatch):
    calls = fake_timer(monkeypatch, 3.0)
    net = make_small_net(digits_sets, tmp_path, build=mlp)
    net.train(nn.Adam(0.01), epochs=1)
    assert calls == [] and net.memory_layout is None
    assert net.net_size(verbose=False).layout == ''
    assert calls == []


@pytest.mark.parametrize('forced', [True, False])
def test_a_forced_layout_is_not_measured(digits_sets, tmp_path, monkeypatch, forced):
    calls = fake_timer(monkeypatch, 1.0 if forced else 3.0)
    net = cnn(digits_sets, tmp_path)
    net.module.to(memory_format=torch.contiguous_format if forced else NHWC)
    net.train(nn.Adam(0.01), epochs=1, channels_last=forced)
    assert calls == [] and net.memory_layout is None
    assert conv_weight(net).is_contiguous(memory_format=NHWC if forced else
                                          torch.contiguous_format)


def test_the_measurement_leaves_weights_modes_and_generators_alone(digits_sets, tmp_path):
    net = cnn(digits_sets, tmp_path)
    net.module.eval()
    weights = net.get_params()
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),
            net.rng.get_state()[1].copy(), net.graph.generator.get_state())
    choice = net.speed_choice()                     # the real timer
    assert choice.steps > 4 and choice.speedup > 0 and net.memory_layout is choice
    for key, value in net.get_params().items():
        assert torch.equal(value, weights[key]) and value.stride() == weights[key].stride()
    assert not any(m.training for m in net.module.modules())
    after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate(),
             net.rng.get_state()[1], net.graph.generator.get_state())
    assert torch.equal(after[0], rngs[0]) and np.array_equal(after[1], rngs[1])
    assert after[2] == rngs[2] and np.array_equal(after[3], rngs[3])
    assert torch.equal(after[4], rngs[4])


def test_the_choice_is_kept_across_train_calls_and_nets(digits_sets, tmp_path, monkeypatch):
    calls = fake_timer(monkeypatch, 1.6)
    net = cnn(digits_sets, tmp_path / 'a')
    net.train(nn.Adam(0.01), epochs=1)
    net.train(nn.Adam(0.01), epochs=1)
    net.net_size(verbose=False)
    twin = cnn(digits_sets, tmp_path / 'b')   # same architecture, batch, device
    twin.train(nn.Adam(0.01), epochs=1)
    assert calls == [32] and twin.memory_layout == net.memory_layout
    assert conv_weight(twin).is_contiguous(memory_format=NHWC)
    other = make_small_net(digits_sets, tmp_path / 'c')      # another architecture
    other.train(nn.Adam(0.01), epochs=1)
    assert calls == [32, 32]
    net.memory_layout = None
    layout.forget()
    net.train(nn.Adam(0.01), epochs=1)
    assert calls == [32, 32, 32]


def test_two_runs_of_one_architecture_in_a_process_agree(digits_sets, tmp_path):
    def run(folder):
        net = make_small_net(digits_sets, folder, build=lambda n: (
            n.add_convolution(4, (3, 3), (1, 1)), n.add_dropout(0.3),
            n.add_convolution(6, (3, 3), (2, 2)), n.add_logistic()))
        net.train(nn.Adam(0.01), epochs=2)          # the real timer, once
        return net

    a, b = run(tmp_path / 'a'), run(tmp_path / 'b')
    assert a.memory_layout is b.memory_layout
    for (key, value), other in zip(a.get_params().items(), b.get_params().values()):
        assert torch.equal(value, other), key


def test_a_saved_net_and_a_checkpoint_record_the_choice(digits_sets, tmp_path, monkeypatch):
    fake_timer(monkeypatch, 1.6)
    net = cnn(digits_sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=1, checkpoint_every=1)
    loaded = nn.load(tmp_path / 'net_best_net.pt')
    assert loaded.memory_layout == net.memory_layout
    assert conv_weight(loaded).is_contiguous(memory_format=NHWC)     # it predicts as net does
    x = digits_sets[2][0]
    assert np.array_equal(loaded.predict(x)[1], net.predict(x)[1])
    monkeypatch.setattr(layout, '_CHOSEN', {})
    calls = fake_timer(monkeypatch, 0.5)        # would choose NCHW if it measured
    again = cnn(digits_sets, tmp_path)
    again.train(nn.Adam(0.01), epochs=2, checkpoint_every=1, resume=True)
    assert calls == [] and again.memory_layout.channels_last
    assert conv_weight(again).is_contiguous(memory_format=NHWC)


def test_net_size_makes_the_choice_and_calibrates_in_it(digits_sets, tmp_path, monkeypatch):
    calls = fake_timer(monkeypatch, 1.6)
    net = cnn(digits_sets, tmp_path)
    report = net.net_size(verbose=False)
    assert calls == [32] and report.layout == 'channels-last'
    assert 'rows on cpu, channels-last:' in str(report)
    assert not conv_weight(net).is_contiguous(memory_format=NHWC)   # the net is not changed
    net.train(nn.Adam(0.01), epochs=1)
    assert calls == [32] and conv_weight(net).is_contiguous(memory_format=NHWC)


def test_the_speed_option_defaults_to_measuring():
    assert Speed().channels_last is None
    assert Speed(channels_last=1).channels_last is True
    assert Speed(channels_last=0).channels_last is False


def test_a_damaged_layout_record_is_refused():
    good = layout.LayoutChoice(True, 1.6, 12, 'cpu', 'abc').as_dict()
    assert layout.LayoutChoice.from_dict(good) == layout.LayoutChoice(**good)
    for bad in ({**good, 'speedup': 'fast'}, {'channels_last': True}, [good]):
        with pytest.raises(ValueError):
            layout.LayoutChoice.from_dict(bad)
    assert layout.recorded_in({'net': {'config': {'memory_layout': [good]}}}) is None


def test_data_parallel_ranks_take_rank_0s_choice(digits_sets, tmp_path, monkeypatch):
    calls = fake_timer(monkeypatch, 0.5)            # this rank would choose NCHW
    rank_0 = layout.LayoutChoice(True, 1.6, 12, 'cpu', 'rank 0')
    net = cnn(digits_sets, tmp_path)
    assert layout.resolve(net, None, across=lambda decide: rank_0) is True
    assert calls == [] and net.memory_layout is rank_0
    assert conv_weight(net).is_contiguous(memory_format=NHWC)
