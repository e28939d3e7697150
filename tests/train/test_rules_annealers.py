"""Tests of pydnn2.learning: rules against numpy references, annealers as exact lists."""

import copy
import inspect
import io
import math

import numpy as np
import pytest
import torch

from pydnn2.errors import ConfigError
from pydnn2.train import (
    AdaDelta, Adam, ConstantLearningRate, LearningRateAdjuster, LearningRateDecay,
    LearningRateSchedule, LearningRule, Momentum, StochasticGradientDescent,
    WackyLearningRateAnnealer, set_learning_rate)

SHAPES = [(3, 4), (5,)]
RATES = [0.1, 0.1, 0.05, 0.05, 0.02, 0.02]  # a learning-rate change between steps
STEPS = len(RATES)


def problem(seed=0, steps=STEPS):
    """Float32 starting parameters and one float32 gradient per step and parameter."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
             for _ in range(steps)]
    return params, grads


def run_torch(rule, params, grads, rates):
    """Apply ``rule``'s optimizer for len(rates) steps; return float32 arrays."""
    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    optimizer = rule.make_optimizer(tensors)
    for step_grads, rate in zip(grads, rates):
        set_learning_rate(optimizer, rate)
        for tensor, grad in zip(tensors, step_grads):
            tensor.grad = torch.tensor(grad)
        optimizer.step()
    return [t.detach().numpy() for t in tensors]


def run_numpy(update, params, grads, rates):
    """Apply ``update(p, g, lr, t, state)`` in float64 to each parameter."""
    result = []
    for i, p in enumerate(params):
        p, state = p.astype(np.float64), {}
        for t, (step_grads, rate) in enumerate(zip(grads, rates), start=1):
            p = update(p, step_grads[i].astype(np.float64), rate, t, state)
        result.append(p)
    return result


def sgd_update(p, g, lr, t, state):
    return p - lr * g


def momentum_update(mu):
    def update(p, g, lr, t, state):
        state['v'] = mu * state.get('v', 0.0) - lr * g
        return p + state['v']
    return update


def adam_update(b1, b2, e, lmbda):
    def update(p, g, lr, t, state):
        b1_t = b1 * lmbda ** (t - 1)
        state['m'] = b1_t * state.get('m', 0.0) + (1 - b1_t) * g
        state['v'] = b2 * state.get('v', 0.0) + (1 - b2) * g ** 2
        m_hat = state['m'] / (1 - b1 ** t)
        v_hat = state['v'] / (1 - b2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + e)
    return update


def adadelta_update(rho, eps):
    def update(p, g, lr, t, state):
        state['g2'] = rho * state.get('g2', 0.0) + (1 - rho) * g ** 2
        dx = -np.sqrt(state.get('dx2', 0.0) + eps) / np.sqrt(state['g2'] + eps) * g
        state['dx2'] = rho * state.get('dx2', 0.0) + (1 - rho) * dx ** 2
        return p + lr * dx
    return update


def assert_close(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=2e-6, atol=1e-7)


RULES_AND_REFERENCES = [
    (lambda: StochasticGradientDescent(0.1), sgd_update),
    (lambda: Momentum(0.9, 0.99, 0.1), momentum_update(0.9)),
    (lambda: Adam(0.1), adam_update(0.9, 0.999, 1e-8, 1 - 1e-8)),
    (lambda: Adam(0.1, b1=0.8, b2=0.9, e=1e-3, lmbda=0.9), adam_update(0.8, 0.9, 1e-3, 0.9)),
    (lambda: AdaDelta(0.9, 1e-4, 1.0), adadelta_update(0.9, 1e-4)),
]


@pytest.mark.parametrize('make_rule, update', RULES_AND_REFERENCES)
def test_rule_matches_numpy_reference(make_rule, update):
    params, grads = problem()
    actual = run_torch(make_rule(), params, grads, RATES)
    assert_close(actual, run_numpy(update, params, grads, RATES))
    assert not np.allclose(actual[0], params[0])


def test_adam_uses_the_b1_decay():
    params, grads = problem(seed=1)
    actual = run_torch(Adam(0.1, lmbda=0.9), params, grads, RATES)
    assert_close(actual, run_numpy(adam_update(0.9, 0.999, 1e-8, 0.9), params, grads, RATES))
    without_decay = run_numpy(adam_update(0.9, 0.999, 1e-8, 1.0), params, grads, RATES)
    assert np.abs(actual[0] - without_decay[0]).max() > 1e-3


def test_adam_counts_steps_per_parameter():
    params, grads = problem(seed=2)
    first, second = [torch.tensor(p, requires_grad=True) for p in params]
    optimizer = Adam(0.1, lmbda=0.9).make_optimizer([first, second])
    for t, step_grads in enumerate(grads):
        first.grad = torch.tensor(step_grads[0])
        second.grad = torch.tensor(step_grads[1]) if t >= 2 else None  # joins at step 3
        optimizer.step()
    update = adam_update(0.9, 0.999, 1e-8, 0.9)
    rates = [0.1] * len(grads)
    assert_close([first.detach().numpy()], run_numpy(update, params[:1], grads, rates))
    late = run_numpy(update, params[1:], [g[1:] for g in grads[2:]], rates[2:])
    assert_close([second.detach().numpy()], late)
    assert optimizer.state[second]['step'] == len(grads) - 2


def test_adam_default_lmbda():
    assert inspect.signature(Adam).parameters['lmbda'].default == 0.99999999


def test_momentum_ramp_sequence_stays_below_its_bound():
    rule = Momentum(0.5, 0.52, 0.1)
    optimizer = rule.make_optimizer([torch.zeros(2, requires_grad=True)])
    momenta = []
    for epoch, loss in enumerate([1.0, 1.2, 0.9, 0.9, 1.0, 0.8, 1.0, 1.0, 1.0]):
        rule.epoch_done(epoch, loss, optimizer)
        momenta.append(rule.momentum)
        assert optimizer.param_groups[0]['momentum'] == rule.momentum
    ramp = [0.5, 0.505, 0.51005, 0.5151505]
    # 1.2 and the 1.0s after a best are worse: ramp; 0.9 equal to the best is not worse;
    # 0.5151505 * 1.01 would pass 0.52, so (as in pydnn) the momentum stays
    expected = [ramp[0], ramp[1], ramp[1], ramp[1], ramp[2], ramp[2], ramp[3], ramp[3], ramp[3]]
    assert momenta == pytest.approx(expected, rel=1e-12, abs=0)
    assert rule.best_train_loss == 0.8


def test_momentum_change_reaches_the_update():
    rule = Momentum(0.5, 0.9, 1.0)
    weight = torch.zeros(1, requires_grad=True)
    optimizer = rule.make_optimizer([weight])
    weight.grad = torch.ones(1)
    optimizer.step()  # v = -1
    rule.epoch_done(0, 1.0, optimizer)
    rule.epoch_done(1, 2.0, optimizer)  # momentum 0.505
    optimizer.step()  # v = 0.505 * -1 - 1
    assert weight.item() == pytest.approx(-1 - 1.505)


def test_set_learning_rate_sets_every_group():
    groups = [{'params': [torch.zeros(1, requires_grad=True)]},
              {'params': [torch.zeros(1, requires_grad=True)], 'lr': 0.5}]
    optimizer = StochasticGradientDescent(0.1).make_optimizer(groups)
    set_learning_rate(optimizer, 0.01)
    assert [g['lr'] for g in optimizer.param_groups] == [0.01, 0.01]


def test_constant_and_decay_rates():
    assert ConstantLearningRate(0.1).simulate(3) == [0.1, 0.1, 0.1]
    assert LearningRateDecay(0.1, 0.5).simulate(4) == [0.1, 0.1 / 1.5, 0.1 / 2, 0.1 / 2.5]
    floored = LearningRateDecay(0.1, 0.5, min_learning_rate=0.05).simulate(5)
    assert floored == [0.1, 0.1 / 1.5, 0.1 / 1.5, 0.1 / 1.5, 0.1 / 1.5]   # 0.05 is the floor


def test_schedule_rates():
    schedule = LearningRateSchedule(((0, 0.1), (2, 0.01), (4, 0.001)))
    assert schedule.learning_rate == 0.1
    assert schedule.simulate(6) == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert schedule.epoch_done(0, 1.0, 1.0, None) == (False, None)
    stop, message = schedule.epoch_done(1, 1.0, 1.0, None)
    assert not stop and '0.01' in message and schedule.learning_rate == 0.01
    assert schedule.epoch_done(2, 1.0, 1.0, None) == (False, None)
    late = LearningRateSchedule(((3, 0.1), (5, 0.01)))    # pydnn: the first rate from the start
    assert late.simulate(7) == [0.1] * 5 + [0.01] * 2


class FakeNet:
    """The two methods WackyLearningRateAnnealer needs, over one tensor."""

    def __init__(self):
        self.weight = torch.zeros(2)

    def get_params(self):
        return {'weight': self.weight.clone()}

    def set_params(self, params):
        self.weight.copy_(params['weight'])


@pytest.mark.parametrize('reset, expected', [('training', 1.0), ('validation', 2.0), (None, 2.0)])
def test_wacky_resets_to_best_weights(reset, expected):
    wacky = WackyLearningRateAnnealer(1.0, 0.01, patience=1, train_improvement_threshold=0.5,
                                      valid_improvement_threshold=0.5, reset_on_decay=reset)
    net = FakeNet()
    # Best training loss at epoch 1, best validation loss at epoch 2; neither
    # improves enough to qualify, and epoch 2 finds the frustration at its patience.
    losses = [(5.0, 5.0), (4.0, 6.0), (4.5, 4.0)]
    for epoch, (train_loss, valid_loss) in enumerate(losses):
        net.weight.fill_(epoch)  # as if the epoch had trained the weights
        stop, message = wacky.epoch_done(epoch, train_loss, valid_loss, net)
    assert not stop and wacky.learning_rate == 0.1
    assert torch.equal(net.weight, torch.full((2,), expected))
    assert ('reset' in message) == (reset is not None)


def test_simulate_leaves_the_annealer_unchanged():
    wacky = WackyLearningRateAnnealer(1.0, 0.01, patience=1)
    before = wacky.state_dict()
    assert wacky.simulate(5, [1.0] * 5) == [1.0, 1.0, 1.0, 0.1, 0.1]
    assert wacky.state_dict() == before


def test_base_classes_name_the_subclass():
    class Half(LearningRateAdjuster):
        pass

    class Lazy(LearningRule):
        pass

    with pytest.raises(NotImplementedError, match='Half'):
        Half(0.1).epoch_done(0, 1.0, None, None)
    with pytest.raises(NotImplementedError, match='Lazy'):
        Lazy(0.1).make_optimizer([torch.zeros(1)])


def test_float_becomes_constant_annealer():
    rule = StochasticGradientDescent(0.1)
    assert isinstance(rule.annealer, ConstantLearningRate)
    assert rule.annealer.learning_rate == 0.1


def through_file(state):
    """Save and load with torch's safe loader, as a checkpoint would."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


ANNEALERS = [
    lambda: LearningRateDecay(0.1, 0.3, min_learning_rate=0.04),
    lambda: LearningRateSchedule(((0, 0.1), (3, 0.01), (5, 0.001))),
    lambda: WackyLearningRateAnnealer(1.0, 1e-4, patience=2, reset_on_decay='training'),
]


@pytest.mark.parametrize('make_annealer', ANNEALERS)
def test_annealer_state_round_trip(make_annealer):
    losses = [3.0, 2.0, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5]
    original, net = make_annealer(), FakeNet()

    def epoch(annealer, k):
        net.weight.fill_(k)
        return annealer.epoch_done(k, losses[k], losses[k], net), annealer.learning_rate

    for k in range(4):
        epoch(original, k)
    restored = make_annealer()
    restored.load_state_dict(through_file(original.state_dict()))
    for k in range(4, len(losses)):
        assert epoch(restored, k) == epoch(original, k)
    if isinstance(original, WackyLearningRateAnnealer):
        kept = [a.state_dict()['kept']['params']['weight'] for a in (restored, original)]
        assert torch.equal(*kept)


@pytest.mark.parametrize('make_rule, update', RULES_AND_REFERENCES)
def test_rule_and_optimizer_resume_exactly(make_rule, update):
    params, grads = problem(seed=3, steps=6)

    def steps(rule, optimizer, tensors, chunk):
        for k, step_grads in enumerate(chunk):
            for tensor, grad in zip(tensors, step_grads):
                tensor.grad = torch.tensor(grad)
            optimizer.step()
            rule.epoch_done(k, 1.0 + k % 2, optimizer)  # ramps Momentum's momentum
            set_learning_rate(optimizer, 0.1 / (k + 2))

    def fresh():
        rule = make_rule()
        tensors = [torch.tensor(p, requires_grad=True) for p in params]
        return rule, rule.make_optimizer(tensors), tensors

    rule, optimizer, tensors = fresh()
    steps(rule, optimizer, tensors, grads[:3])
    saved = through_file({'rule': rule.state_dict(), 'optimizer': optimizer.state_dict(),
                          'params': [t.detach().clone() for t in tensors]})
    rule2, optimizer2, tensors2 = fresh()
    with torch.no_grad():
        for tensor, value in zip(tensors2, saved['params']):
            tensor.copy_(value)
    rule2.load_state_dict(saved['rule'])
    optimizer2.load_state_dict(saved['optimizer'])
    steps(rule, optimizer, tensors, grads[3:])
    steps(rule2, optimizer2, tensors2, grads[3:])
    assert all(torch.equal(a, b) for a, b in zip(tensors, tensors2))
    assert rule2.state_dict() == rule.state_dict()


def test_rule_state_includes_the_annealer():
    rule = Momentum(0.9, 0.99, LearningRateSchedule(((0, 0.1), (1, 0.01))))
    rule.annealer.epoch_done(0, 1.0, None, None)
    restored = Momentum(0.9, 0.99, LearningRateSchedule(((0, 0.1), (1, 0.01))))
    restored.load_state_dict(copy.deepcopy(rule.state_dict()))
    assert restored.annealer.learning_rate == 0.01


BAD_CONFIGS = [
    (lambda: ConstantLearningRate(-0.1), 'learning_rate'),
    (lambda: ConstantLearningRate(math.nan), 'learning_rate'),
    (lambda: LearningRateAdjuster(0), 'initial_learn_rate'),
    (lambda: LearningRateDecay(0.1, -1.0), 'decay'),
    (lambda: LearningRateDecay(0.1, 0.5, min_learning_rate=0.2), 'min_learning_rate'),
    (lambda: LearningRateSchedule(()), 'schedule'),
    (lambda: LearningRateSchedule(((0, 0.1), (5, 0.01), (5, 0.001))), 'schedule'),
    (lambda: LearningRateSchedule(((0, 0.1), (5, -0.01))), 'schedule'),
    (lambda: LearningRateSchedule(0.1), 'schedule'),
    (lambda: WackyLearningRateAnnealer(0.1, 0.1), 'min_learning_rate'),
    (lambda: WackyLearningRateAnnealer(0.1, 0.01, patience=-1), 'patience'),
    (lambda: WackyLearningRateAnnealer(0.1, 0.01, patience=2.5), 'patience'),
    (lambda: WackyLearningRateAnnealer(0.1, 0.01, train_improvement_threshold=1.5),
     'train_improvement_threshold'),
    (lambda: WackyLearningRateAnnealer(0.1, 0.01, reset_on_decay='best'), 'reset_on_decay'),
    (lambda: StochasticGradientDescent(-0.1), 'learning_rate'),
    (lambda: StochasticGradientDescent('0.1'), 'learning_rate'),
    (lambda: Momentum(-0.1, 0.9, 0.1), 'initial_momentum'),
    (lambda: Momentum(0.9, 1.0, 0.1), 'max_momentum'),
    (lambda: Momentum(0.9, 0.5, 0.1), 'max_momentum'),
    (lambda: Adam(0.1, b1=1.0), 'b1'),
    (lambda: Adam(0.1, lmbda=0.0), 'lmbda'),
    (lambda: AdaDelta(0.9, 0.0, 1.0), 'epsilon'),
]


@pytest.mark.parametrize('make, name', BAD_CONFIGS)
def test_bad_arguments_raise_config_error(make, name):
    with pytest.raises(ConfigError, match=f'{name}.*received'):
        make()


def test_an_annealer_is_stepped_by_one_training_run_at_a_time():
    decay = LearningRateDecay(0.1, 0.5)
    first, second = Momentum(0.5, 0.9, decay), StochasticGradientDescent(decay)  # pydnn's way
    assert first.annealer is second.annealer is decay
    decay.bind(first)
    decay.bind(first)                            # the same rule again: fine
    with pytest.raises(ConfigError, match='twice per epoch'):
        decay.bind(second)
    decay.release(first)
    decay.bind(second)
