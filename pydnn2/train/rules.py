"""Learning rules: each makes the torch optimizer of a net and owns what torch lacks.

A *learning rule* (:class:`StochasticGradientDescent`, :class:`Momentum`,
:class:`Adam`, :class:`AdaDelta`) turns the net's parameters into a
``torch.optim.Optimizer``. Its learning rate is either a float or an
*annealer* (:mod:`pydnn2.train.annealers`), which sees each epoch's losses
and picks the rate of the next epoch, or asks to stop.

The training loop drives them once per finished epoch, in this order::

    stop, message = rule.annealer.epoch_done(epoch, train_loss, valid_loss, net)
    rule.epoch_done(epoch, train_loss, optimizer)
    set_learning_rate(optimizer, rule.annealer.learning_rate)

Checkpoints hold ``rule.state_dict()`` (which includes its annealer's) and
``optimizer.state_dict()``; loading both into freshly built objects continues
training bit for bit.

Examples
--------
>>> import torch
>>> from pydnn2.train.annealers import LearningRateDecay
>>> rule = Momentum(0.9, 0.99, LearningRateDecay(0.1, decay=0.5))
>>> optimizer = rule.make_optimizer([torch.zeros(3, requires_grad=True)])
>>> rule.annealer.epoch_done(0, train_loss=0.7, valid_loss=0.8, net=None)
(False, None)
>>> rule.epoch_done(0, 0.7, optimizer)
>>> set_learning_rate(optimizer, rule.annealer.learning_rate)
>>> optimizer.param_groups[0]['lr']
0.06666666666666667
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from .. import checks
from ..errors import ConfigError
from .annealers import ConstantLearningRate, KeyedState, LearningRateAdjuster
from .optimizers import AdamOptimizer, MomentumOptimizer


def set_learning_rate(optimizer, rate):
    """Set the learning rate of every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group['lr'] = float(rate)


_RULES: list = []      # every LearningRule subclass, in the order they were defined


def rule_names():
    """The learning rules defined so far, by class name, in order: ``'Momentum, Adam or
    AdaDelta'`` for error messages."""
    names = [cls.__name__ for cls in _RULES if not cls.__name__.startswith('_')]
    return ', '.join(names[:-1]) + f' or {names[-1]}' if len(names) > 1 else ''.join(names)


def check_rule(updater, where='updater'):
    """``updater`` if it is a :class:`LearningRule`, else a ConfigError naming the rules."""
    if not isinstance(updater, LearningRule):
        raise ConfigError(f'{where} must be a learning rule ({rule_names()}); received '
                          f'{type(updater).__name__}')
    return updater


class LearningRule(KeyedState):
    """Base class of the learning rules; each makes a torch optimizer.

    Subclasses implement :meth:`make_optimizer` and, if they change during
    training, :meth:`epoch_done` and ``_state_keys``.

    Parameters
    ----------
    learning_rate : float or LearningRateAdjuster
        A float is a constant rate (it becomes a :class:`ConstantLearningRate`).
        An annealer may be given to several rules, but only one training run
        may step it at a time (see ``LearningRateAdjuster.bind``).

    Attributes
    ----------
    annealer : LearningRateAdjuster
        Sets the learning rate of each epoch.
    """

    optimizer_slots = 0      # tensors the optimizer keeps per parameter (memory model)
    step_temporaries = 0     # parameter-sized temporaries of one update (memory model)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _RULES.append(cls)

    def __init__(self, learning_rate):
        self.annealer = _as_annealer(learning_rate)

    def make_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """Return a ``torch.optim.Optimizer`` over ``params`` at the annealer's rate.

        Parameters
        ----------
        params : iterable of tensors or parameter-group dicts
        """
        raise NotImplementedError(f'{type(self).__name__} must implement make_optimizer(params)')

    def epoch_done(self, epoch: int, train_loss: float,
                   optimizer: torch.optim.Optimizer) -> None:
        """Adjust the rule after an epoch (called after the annealer's); no-op here."""

    def state_dict(self) -> dict[str, Any]:
        """Return the changing state, the annealer's included, as a plain dict."""
        return {**super().state_dict(), 'annealer': self.annealer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        self.annealer.load_state_dict(state['annealer'])


def _as_annealer(learning_rate):
    """Return the annealer for a new rule; a float becomes a constant one."""
    if isinstance(learning_rate, LearningRateAdjuster):
        return learning_rate
    if checks.is_number(learning_rate):
        return ConstantLearningRate(learning_rate)
    raise ConfigError(f'learning_rate must be a number > 0 or a LearningRateAdjuster; '
                      f'received {learning_rate!r}')


class StochasticGradientDescent(LearningRule):
    """Plain stochastic gradient descent: ``p = p - lr * g``.

    Parameters
    ----------
    learning_rate : float or LearningRateAdjuster

    Examples
    --------
    >>> import torch
    >>> weight = torch.ones(2, requires_grad=True)
    >>> optimizer = StochasticGradientDescent(0.5).make_optimizer([weight])
    >>> weight.grad = torch.tensor([1.0, -2.0])
    >>> optimizer.step()
    >>> weight.detach()
    tensor([0.5000, 2.0000])
    """

    def make_optimizer(self, params):
        """Return ``torch.optim.SGD`` over ``params``."""
        return torch.optim.SGD(params, lr=self.annealer.learning_rate, foreach=True)


class Momentum(LearningRule):
    """Gradient descent with classical momentum that ramps up while progress stalls.

    Each step does ``v = momentum * v - lr * g; p = p + v``. After an epoch
    whose training loss is worse than the best so far, momentum grows by 1%
    when the result stays below ``max_momentum`` (pydnn's rule: it never
    reaches the cap exactly; a momentum of 0 stays 0); an equal loss is not
    worse. The final epochs do not ramp it.

    Parameters
    ----------
    initial_momentum : float
        The momentum of the first epoch, in [0, 1).
    max_momentum : float
        The bound, in [initial_momentum, 1).
    learning_rate : float or LearningRateAdjuster

    Examples
    --------
    >>> rule = Momentum(0.5, 0.9, learning_rate=0.1)
    >>> optimizer = rule.make_optimizer([torch.zeros(2, requires_grad=True)])
    >>> for epoch, loss in enumerate([1.0, 1.5]):
    ...     rule.epoch_done(epoch, loss, optimizer)
    >>> rule.momentum, optimizer.param_groups[0]['momentum']
    (0.505, 0.505)
    """

    _state_keys = ('momentum', 'best_train_loss')
    optimizer_slots = 1

    def __init__(self, initial_momentum, max_momentum, learning_rate):
        initial = checks.number(initial_momentum, 'initial_momentum', at_least=0, below=1)
        self.max_momentum = checks.number(
            max_momentum, 'max_momentum', at_least=initial, below=1,
            expected=f'a number in [initial_momentum, 1) = [{initial}, 1)')
        super().__init__(learning_rate)
        self.initial_momentum = initial
        self.momentum = initial
        self.best_train_loss = math.inf

    def make_optimizer(self, params):
        """Return a :class:`MomentumOptimizer` at the current momentum."""
        return MomentumOptimizer(params, lr=self.annealer.learning_rate, momentum=self.momentum)

    def epoch_done(self, epoch, train_loss, optimizer):
        """Ramp the momentum up by 1% after a worse training loss (as long as it stays
        below ``max_momentum``, as in pydnn); else record the best loss."""
        if train_loss <= self.best_train_loss:
            self.best_train_loss = train_loss
            return
        if self.momentum * 1.01 < self.max_momentum:
            self.momentum *= 1.01
            for group in optimizer.param_groups:
                group['momentum'] = self.momentum


class Adam(LearningRule):
    """Adam (Kingma & Ba, arXiv:1412.6980v4), whose ``b1`` decays by ``lmbda`` per step.

    Parameters
    ----------
    learning_rate : float or LearningRateAdjuster
        The step size (alpha in the paper; it suggests 0.001).
    b1, b2 : float
        Decay rates of the first and second moment estimates, in [0, 1).
    e : float
        Added to the root of the second moment, > 0.
    lmbda : float
        Step ``t`` uses ``b1 * lmbda ** (t - 1)``; in (0, 1].

    Examples
    --------
    >>> rule = Adam(0.001)
    >>> optimizer = rule.make_optimizer([torch.zeros(4, requires_grad=True)])
    >>> optimizer.param_groups[0]['lmbda']
    0.99999999
    """

    optimizer_slots, step_temporaries = 2, 1

    def __init__(self, learning_rate, b1=0.9, b2=0.999, e=1e-8, lmbda=1 - 1e-8):
        self.b1 = checks.number(b1, 'b1', at_least=0, below=1)
        self.b2 = checks.number(b2, 'b2', at_least=0, below=1)
        self.e = checks.number(e, 'e', above=0)
        self.lmbda = checks.number(lmbda, 'lmbda', above=0, at_most=1)
        super().__init__(learning_rate)

    def make_optimizer(self, params):
        """Return an :class:`AdamOptimizer` over ``params``."""
        return AdamOptimizer(params, lr=self.annealer.learning_rate, b1=self.b1,
                             b2=self.b2, e=self.e, lmbda=self.lmbda)


class AdaDelta(LearningRule):
    """AdaDelta (Zeiler, arXiv:1212.5701), scaled by the learning rate.

    Per step::

        E[g2] = rho * E[g2] + (1 - rho) * g ** 2
        dx = -sqrt(E[dx2] + epsilon) / sqrt(E[g2] + epsilon) * g
        E[dx2] = rho * E[dx2] + (1 - rho) * dx ** 2
        p = p + lr * dx

    which is what ``torch.optim.Adadelta`` computes.

    Parameters
    ----------
    rho : float
        Decay rate of the running averages, in [0, 1).
    epsilon : float
        Conditioning constant, > 0.
    learning_rate : float or LearningRateAdjuster
        1.0 gives the paper's method.

    Examples
    --------
    >>> rule = AdaDelta(0.95, 1e-6, learning_rate=1.0)
    >>> type(rule.make_optimizer([torch.zeros(2, requires_grad=True)])).__name__
    'Adadelta'
    """

    optimizer_slots, step_temporaries = 2, 1

    def __init__(self, rho, epsilon, learning_rate):
        self.rho = checks.number(rho, 'rho', at_least=0, below=1)
        self.epsilon = checks.number(epsilon, 'epsilon', above=0)
        super().__init__(learning_rate)

    def make_optimizer(self, params):
        """Return ``torch.optim.Adadelta`` over ``params``."""
        return torch.optim.Adadelta(params, lr=self.annealer.learning_rate, rho=self.rho,
                                    eps=self.epsilon, foreach=True)
