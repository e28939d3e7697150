"""amp='auto': bf16 autocast where the hardware computes it natively and it measured
faster than fp32, measured once per net with the memory layout and recorded in its
files; the Precision the training steps then run under."""

import pytest
import torch

from conftest import make_small_net
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.model import layout
from pydnn2.model.timing import LayoutTiming
from pydnn2.train.precision import Precision


@pytest.fixture(autouse=True)
def no_earlier_choices(monkeypatch):
    """Each test starts with no choice measured in this process."""
    monkeypatch.setattr(layout, '_CHOSEN', {})


def fake_hardware(monkeypatch, bf16_speed, native=True):
    """bf16 native (or not) and ``bf16_speed`` times as fast as fp32 (NCHW alike in both);
    returns the precisions timed, in order."""
    timed = []

    def time_layouts(module, make_batch, batch_size, device, budget, autocast):
        amp = 'bf16' if autocast is not None else 'fp32'
        timed.append(amp)
        seconds = 1e-5 / (bf16_speed if amp == 'bf16' else 1.0)
        return LayoutTiming(seconds, seconds, 1.0, 12)

    monkeypatch.setattr(layout, 'time_layouts', time_layouts)
    monkeypatch.setattr(layout, 'native_low_precision',
                        lambda device: ('bf16',) if native else ())
    return timed


def cnn(net):
    net.add_convolution(4, (3, 3), (1, 1))
    net.add_convolution(6, (3, 3), (2, 2))
    net.add_logistic()


class Seen(nn.Callback):
    """Records the precision the run's steps use."""

    def on_train_begin(self, net, logs):
        self.precision = str(self.trainer.precision)


@pytest.mark.parametrize('speed, expected', [(2.0, 'bf16'), (layout.MARGIN - 0.1, None)])
def test_auto_takes_bf16_where_native_and_clearly_faster(digits_sets, tmp_path, monkeypatch,
                                                         capsys, speed, expected):
    timed = fake_hardware(monkeypatch, speed)
    net, seen = make_small_net(digits_sets, tmp_path, build=cnn, verbose=True), Seen()
    capsys.readouterr()                                     # (the builder's lines)
    net.train(nn.Adam(0.01), epochs=1, amp='auto', callbacks=[seen])
    assert timed == ['fp32', 'bf16']                       # once, both precisions
    assert net.memory_layout.auto() == expected
    assert seen.precision == ('bf16 autocast, NCHW' if expected else 'fp32, NCHW')
    first = capsys.readouterr().out.splitlines()[0]
    assert f'bf16 NCHW {100000 * speed:,.0f}' in first and 'fp32 NCHW 100,000' in first
    net.train(nn.Adam(0.01), epochs=1, amp='auto')         # the net's choice: not again
    assert timed == ['fp32', 'bf16']


def test_auto_is_fp32_where_bf16_is_not_native(digits_sets, tmp_path, monkeypatch):
    timed = fake_hardware(monkeypatch, 3.0, native=False)
    net, seen = make_small_net(digits_sets, tmp_path, build=cnn), Seen()
    net.train(nn.Adam(0.01), epochs=1, amp='auto', callbacks=[seen])
    assert timed == ['fp32'] and seen.precision == 'fp32, NCHW'
    assert net.memory_layout.auto() is None


def test_the_choice_and_its_speeds_are_kept_in_the_nets_file(digits_sets, tmp_path,
                                                             monkeypatch):
    fake_hardware(monkeypatch, 2.0)
    net = make_small_net(digits_sets, tmp_path, build=cnn)
    net.train(nn.Adam(0.01), epochs=1, amp='auto')
    loaded = nn.load(nn.save(net))
    assert loaded.memory_layout == net.memory_layout
    assert loaded.memory_layout.speeds == pytest.approx({
        'fp32 NCHW': 1e5, 'fp32 channels-last': 1e5, 'bf16 NCHW': 2e5, 'bf16 channels-last': 2e5})
    assert loaded.memory_layout.auto() == 'bf16'
    report = net.net_size(verbose=False)
    assert report.speeds == net.memory_layout.speeds
    assert 'measured training rows/s: fp32 NCHW 100,000' in str(report)


def test_amp_auto_is_an_option_and_a_precision_steps():
    from pydnn2.train.config import TrainConfig
    assert TrainConfig.from_options(amp='auto').speed.amp == 'auto'
    with pytest.raises(ConfigError, match="amp must be one of"):
        TrainConfig.from_options(amp='bf32')
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, channels):
            return self.linear(channels['x'])

    precision, model = Precision('cpu', 'bf16'), Model()
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    before = model.linear.weight.detach().clone()
    logits, loss = precision.step(model, optimizer, {'x': torch.randn(5, 4)},
                                  torch.tensor([0, 1, 2, 0, 1]))
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert model.linear.weight.dtype == torch.float32          # (fp32 weights, updated)
    assert not torch.equal(model.linear.weight, before)
