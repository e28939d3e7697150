"""The learning-rate finder: its curve and suggestion, and that it leaves the net,
its rule and every random generator exactly as they were."""

import math
import os
import random
import sys

import numpy as np
import pytest
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2 import rng as rngs
from pydnn2.errors import ConfigError
from pydnn2.train.lr_find import LRFindResult, smooth, suggest, sweep_rates

sys.path.insert(0, os.path.dirname(__file__))
from equality import same

Image = pytest.importorskip('PIL.Image')


@pytest.fixture(scope='module')
def sets():
    return preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(3))


def build(sets, tmp_path, pre=None):
    net = nn.NN(pre or preprocess.ArrayPreprocessor(sets), 'images', 10, 32,
                np.random.RandomState(0), output_dir=str(tmp_path), verbose=False,
                device='cpu')
    net.add_convolution(8, (3, 3), (2, 2))
    net.add_dropout(0.2)
    net.add_hidden(32)
    net.add_logistic()
    return net


def rotating(sets):
    """Digit images that the preprocessor turns anew every epoch (state to restore)."""
    raw = [[(255 - 15 * image[0]).astype(np.uint8) for image in part[0]] for part in sets]
    image_sets = [(r, part[1], part[2]) for r, part in zip(raw, sets)]
    return preprocess.Rotator360(image_sets, (10, 10), preprocess.StretchResizer(),
                                 np.random.RandomState(5), rotation_range=(-30, 30),
                                 flip_lr=False, progress=False)


def generators(net):
    """Every random generator's state, as comparable plain data."""
    state = {**rngs.torch_states(), 'numpy': np.random.get_state(),
             'python': random.getstate(), 'net_rng': rngs.numpy_state(net.rng),
             'init': net.graph.generator.get_state(), 'pre': net.preprocessor.random_state()}
    return state


def test_the_sweep_rates_and_the_smoothing():
    assert sweep_rates(1e-3, 1.0, 4) == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert smooth([2.0] * 5) == pytest.approx([2.0] * 5)
    noisy = 1 + np.tile([0.5, -0.5], 20)
    assert np.ptp(smooth(noisy)[5:-5]) < 0.5 * np.ptp(noisy)
    # a loss that falls fastest at rate 1e-2 and is lowest at 1e-1
    rates = sweep_rates(1e-5, 1.0, 101)
    x = np.log10(rates)
    losses = 2 - np.tanh(2 * (x + 2)) + np.where(x > -1, 5 * (x + 1) ** 2, 0)
    rate, how = suggest(rates, losses)
    assert how == 'steepest descent' and rate == pytest.approx(1e-2, rel=0.1)
    rate, how = suggest(rates[:3], [1.0, 2.0, 3.0])          # never falls
    assert rate == rates[0] and how.startswith('a tenth')


def test_lr_find_leaves_weights_modes_rule_and_generators_as_they_were(sets, tmp_path):
    net = build(sets, tmp_path)
    net.module.eval()
    net.layers[1].module.train()           # a mix of modes must come back as it was
    modes = [m.training for m in net.module.modules()]
    weights = net.get_params()
    rule = nn.Momentum(0.5, 0.9, nn.LearningRateDecay(0.01, 0.5))
    rule_state, before, history = rule.state_dict(), generators(net), net.history
    result = net.lr_find(rule, num_steps=60)
    after = net.module.state_dict()
    assert weights.keys() == after.keys()
    for key, value in weights.items():
        assert torch.equal(value, after[key]), key
    assert [m.training for m in net.module.modules()] == modes
    assert same(generators(net), before)
    assert same(rule.state_dict(), rule_state) and rule.annealer._training_rule is None
    assert not net.initialized and net.history is history and history.epochs == 0
    assert isinstance(result, LRFindResult)


def test_the_curve_and_the_suggestion(sets, tmp_path):
    net = build(sets, tmp_path)
    result = net.lr_find(nn.Adam(0.001), start_lr=1e-5, end_lr=0.5, num_steps=80)
    assert result.num_steps == 80 and not result.stopped_early
    assert len(result.rates) == len(result.losses) == len(result.raw_losses) == 80
    assert result.rates[0] == pytest.approx(1e-5) and result.rates[-1] == pytest.approx(0.5)
    assert np.all(np.diff(result.rates) > 0)
    assert np.all(np.isfinite(result.raw_losses)) and np.all(np.isfinite(result.losses))
    assert math.isfinite(result.suggestion)
    assert result.rates[0] <= result.suggestion <= result.rates[-1]
    assert result.suggestion <= result.min_loss_rate
    assert result.raw_losses[0] == pytest.approx(math.log(10), abs=0.1)   # untrained: chance
    assert result.losses.min() < 0.8 * result.losses[0]                    # it learned
    assert 'suggestion' in repr(result)


def test_the_sweep_stops_when_the_loss_explodes(sets, tmp_path):
    net = build(sets, tmp_path)
    result = net.lr_find(nn.StochasticGradientDescent(0.1), start_lr=1e-3, end_lr=1e4,
                         num_steps=150)
    assert result.stopped_early and 3 < result.num_steps < 150
    assert len(result.rates) == len(result.losses) == len(result.raw_losses) == result.num_steps
    assert result.rates[0] <= result.suggestion <= result.rates[-1]


def history_without_times(history):
    return {k: v for k, v in history.items() if k != 'seconds'}


@pytest.mark.parametrize('augment', [False, True], ids=['arrays', 'rotating-images'])
@pytest.mark.slow
def test_training_after_lr_find_is_training_without_it(sets, tmp_path, augment):
    nets = [build(sets, tmp_path / name, rotating(sets) if augment else None)
            for name in ('plain', 'after')]
    nets[1].lr_find(nn.Adam(0.001), num_steps=70)      # more than an epoch of batches
    histories = [net.train(nn.Adam(0.003), epochs=2) for net in nets]
    assert history_without_times(histories[0]) == history_without_times(histories[1])
    for (key, a), b in zip(nets[0].module.state_dict().items(),
                           nets[1].module.state_dict().values()):
        assert torch.equal(a, b), key


@pytest.mark.slow
def test_the_plot_writes_a_picture(sets, tmp_path):
    net = build(sets, tmp_path)
    path = tmp_path / 'lr.png'
    result = net.lr_find(nn.Adam(0.001), num_steps=50, plot=str(path))
    assert path.stat().st_size > 10_000
    pixels = np.asarray(Image.open(path).convert('L'), np.float64)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 10
    fig = result.plot(tmp_path / 'again.svg')
    assert fig.axes[0].get_xscale() == 'log' and (tmp_path / 'again.svg').stat().st_size > 0


@pytest.mark.parametrize('options, message', [
    (dict(start_lr=0), 'start_lr'), (dict(start_lr=0.1, end_lr=0.01), 'end_lr'),
    (dict(num_steps=1), 'num_steps'), (dict(diverge=1), 'diverge'),
    (dict(updater='adam'), 'learning rule')])
def test_bad_arguments_are_refused_before_anything_runs(sets, tmp_path, options, message):
    net = build(sets, tmp_path)
    weights = net.get_params()
    with pytest.raises(ConfigError, match=message):
        net.lr_find(**options)
    assert all(torch.equal(v, net.module.state_dict()[k]) for k, v in weights.items())


def test_a_loss_that_is_never_finite_is_a_diverged_training(sets, tmp_path):
    net = build(sets, tmp_path)
    with torch.no_grad():
        net.layers[-1].W.fill_(float('inf'))
    weights = net.get_params()
    with pytest.raises(nn.TrainingDivergedError, match='not finite at the first rate'):
        net.lr_find(num_steps=10)
    for key, value in weights.items():
        assert torch.equal(value, net.module.state_dict()[key]), key
