"""Learning rules, which make torch optimizers, and learning-rate annealers.

A *learning rule* (:class:`StochasticGradientDescent`, :class:`Momentum`,
:class:`Adam`, :class:`AdaDelta`) turns the net's parameters into a
``torch.optim.Optimizer``. Its learning rate is either a float or an
*annealer* (:class:`LearningRateDecay`, :class:`LearningRateSchedule`,
:class:`WackyLearningRateAnnealer`), which sees each epoch's losses and picks
the rate of the next epoch, or asks to stop.

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
>>> rule = Momentum(0.9, 0.99, LearningRateDecay(0.1, decay=0.5))
>>> rule.annealer.simulate(3)
[0.1, 0.06666666666666667, 0.05]
>>> optimizer = rule.make_optimizer([torch.zeros(3, requires_grad=True)])
>>> rule.annealer.epoch_done(0, train_loss=0.7, valid_loss=0.8, net=None)
(False, None)
>>> rule.epoch_done(0, 0.7, optimizer)
>>> set_learning_rate(optimizer, rule.annealer.learning_rate)
>>> optimizer.param_groups[0]['lr']
0.06666666666666667
"""

import copy
import math
import numbers

import torch

from .errors import ConfigError
from .optim import AdamOptimizer, MomentumOptimizer

RESET_CHOICES = (None, 'training', 'validation')


def _number(name, value, expected, ok):
    """Return ``value`` as a float if it is a finite real number passing ``ok``."""
    real = (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))
    if not (real and ok(float(value))):
        raise ConfigError(f'{name} must be {expected}; received {value!r}')
    return float(value)


def _rate(name, value):
    return _number(name, value, 'a number > 0', lambda x: x > 0)


def _count(name, value, minimum):
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
            or value < minimum):
        raise ConfigError(f'{name} must be an integer >= {minimum}; received {value!r}')
    return int(value)


def _losses(name, losses, epochs):
    """The per-epoch losses for :meth:`LearningRateAdjuster.simulate`."""
    if losses is None:
        return [1.0] * epochs
    losses = list(losses)
    if len(losses) < epochs:
        raise ConfigError(f'{name} needs one loss per simulated epoch ({epochs}); '
                          f'received {len(losses)}')
    return losses


class _KeyedState:
    """``state_dict`` and ``load_state_dict`` over the attributes in ``_state_keys``."""

    _state_keys = ()

    def state_dict(self):
        """Return the changing state as a plain dict of numbers, None and tensors."""
        return {key: copy.copy(getattr(self, key)) for key in self._state_keys}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        if any(key not in state for key in self._state_keys):
            raise ConfigError(f'a {type(self).__name__} state needs the keys '
                              f'{sorted(self._state_keys)}; received {sorted(state)}')
        for key in self._state_keys:
            setattr(self, key, copy.copy(state[key]))


class LearningRateAdjuster(_KeyedState):
    """Base class of the annealers, which set the learning rate epoch by epoch.

    Subclasses implement :meth:`epoch_done` and name the attributes that
    change during training in ``_state_keys``, which :meth:`state_dict` saves.

    Parameters
    ----------
    initial_learn_rate : float
        The learning rate of the first epoch.

    Attributes
    ----------
    learning_rate : float
        The learning rate of the coming epoch.
    """

    _state_keys = ('learning_rate',)

    def __init__(self, initial_learn_rate):
        self.learning_rate = _rate('initial_learn_rate', initial_learn_rate)
        self._has_rule = False

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Take in the results of a finished epoch and set the next rate.

        Parameters
        ----------
        epoch : int
            0-based index of the epoch that just finished.
        train_loss : float
            Its mean training loss.
        valid_loss : float or None
            Its validation loss; None when there is none (final epochs).
        net : object or None
            The net, for annealers that save or restore weights through
            ``net.get_params()`` and ``net.set_params(params)``; None in
            :meth:`simulate`.

        Returns
        -------
        stop : bool
            True to end training.
        message : str or None
            Something worth reporting about this epoch, if anything.
        """
        raise NotImplementedError(
            f'{type(self).__name__} must implement '
            f'epoch_done(epoch, train_loss, valid_loss, net)')

    def simulate(self, epochs, train_losses=None, valid_losses=None):
        """Return the learning rate of each of ``epochs`` epochs, without training.

        Runs on a copy, so this annealer is left as it was. The list is
        shorter than ``epochs`` when the annealer asks to stop early.

        Parameters
        ----------
        epochs : int
            How many epochs to simulate.
        train_losses, valid_losses : sequence of float, optional
            The loss of each epoch; 1.0 throughout when left out.
            ``valid_losses`` may hold None for epochs without validation.

        Returns
        -------
        list of float
            The rate used in each simulated epoch.
        """
        epochs = _count('epochs', epochs, 0)
        train_losses = _losses('train_losses', train_losses, epochs)
        valid_losses = _losses('valid_losses', valid_losses, epochs)
        annealer = copy.deepcopy(self)
        rates = []
        for epoch in range(epochs):
            rates.append(annealer.learning_rate)
            stop, _ = annealer.epoch_done(
                epoch, train_losses[epoch], valid_losses[epoch], None)
            if stop:
                break
        return rates


class ConstantLearningRate(LearningRateAdjuster):
    """A learning rate that never changes; what a plain float becomes.

    Parameters
    ----------
    learning_rate : float
        The rate of every epoch.

    Examples
    --------
    >>> ConstantLearningRate(0.01).simulate(3)
    [0.01, 0.01, 0.01]
    """

    def __init__(self, learning_rate):
        super().__init__(_rate('learning_rate', learning_rate))

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Keep the rate; never stop."""
        return False, None


class LearningRateDecay(LearningRateAdjuster):
    """Inverse-time decay: epoch ``k`` (from 0) uses ``learning_rate / (1 + k * decay)``.

    Parameters
    ----------
    learning_rate : float
        The rate of the first epoch.
    decay : float
        How fast the rate falls; 0 keeps it constant.
    min_learning_rate : float, optional
        A floor: once the formula falls below it, the rate stays at it.

    Examples
    --------
    >>> LearningRateDecay(0.1, decay=1.0, min_learning_rate=0.03).simulate(5)
    [0.1, 0.05, 0.03333333333333333, 0.03, 0.03]
    """

    def __init__(self, learning_rate, decay, min_learning_rate=None):
        rate = _rate('learning_rate', learning_rate)
        self.decay = _number('decay', decay, 'a number >= 0', lambda x: x >= 0)
        if min_learning_rate is not None:
            min_learning_rate = _number(
                'min_learning_rate', min_learning_rate,
                f'None or a number in (0, learning_rate] = (0, {rate}]',
                lambda x: 0 < x <= rate)
        super().__init__(rate)
        self.initial_learning_rate = rate
        self.min_learning_rate = min_learning_rate

    def rate_at(self, epoch):
        """Return the learning rate of epoch ``epoch`` (0-based)."""
        rate = self.initial_learning_rate / (1 + epoch * self.decay)
        if self.min_learning_rate is None:
            return rate
        return max(rate, self.min_learning_rate)

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Set the rate of epoch ``epoch + 1``; never stop."""
        self.learning_rate = self.rate_at(epoch + 1)
        return False, None


def _schedule_pairs(schedule):
    """Check a schedule of (epoch, rate) pairs; return it as a tuple of tuples."""
    expected = ('a non-empty sequence of (epoch, learning_rate) pairs starting at '
                'epoch 0, with increasing epochs and rates > 0')
    try:
        pairs = tuple((start, rate) for start, rate in schedule)
    except (TypeError, ValueError):
        raise ConfigError(f'schedule must be {expected}; received {schedule!r}') from None
    starts = [start for start, _ in pairs]
    fine = (pairs and starts[0] == 0
            and all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                    for s in starts)
            and all(a < b for a, b in zip(starts, starts[1:])))
    if not fine:
        raise ConfigError(f'schedule must be {expected}; received {schedule!r}')
    return tuple((int(start), _rate(f'the rate for epoch {start} in schedule', rate))
                 for start, rate in pairs)


class LearningRateSchedule(LearningRateAdjuster):
    """A learning rate that follows a table of (epoch, rate) pairs.

    Epoch ``k`` uses the rate of the last pair whose epoch is ``<= k``.

    Parameters
    ----------
    schedule : sequence of (int, float)
        Pairs of a 0-based starting epoch and its rate; the first pair must
        start at epoch 0 and the epochs must increase.

    Examples
    --------
    >>> LearningRateSchedule(((0, 0.1), (2, 0.01), (3, 0.001))).simulate(4)
    [0.1, 0.1, 0.01, 0.001]
    """

    def __init__(self, schedule):
        pairs = _schedule_pairs(schedule)
        super().__init__(pairs[0][1])
        self.schedule = pairs

    def rate_at(self, epoch):
        """Return the learning rate of epoch ``epoch`` (0-based)."""
        return [rate for start, rate in self.schedule if start <= epoch][-1]

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Set the rate of epoch ``epoch + 1``; report a change; never stop."""
        rate = self.rate_at(epoch + 1)
        changed = rate != self.learning_rate
        self.learning_rate = rate
        return False, (f'learning rate set to {rate:g} by the schedule' if changed else None)


class WackyLearningRateAnnealer(LearningRateAdjuster):
    """Divide the learning rate by 10 whenever patience runs out.

    Patience is refilled by an epoch whose training loss beats the best so
    far by the factor ``train_improvement_threshold``, or whose validation
    loss beats the best by ``valid_improvement_threshold``; any other epoch
    uses one unit of it. When it is used up the rate drops tenfold, or
    training stops if that would go below ``min_learning_rate``. On a drop
    the net can be reset to the weights of its best training or validation
    epoch.

    Parameters
    ----------
    learning_rate : float
        The rate of the first epoch.
    min_learning_rate : float
        Training stops instead of dropping the rate below this.
    patience : int
        Epochs without enough improvement before the rate drops.
    train_improvement_threshold, valid_improvement_threshold : float
        In (0, 1]: a loss refills patience when it is below the best loss so
        far times this factor.
    reset_on_decay : {None, 'training', 'validation'}
        Whose best weights to restore on each drop; None keeps the current
        weights. Needs a net with ``get_params()`` (a dict of copied tensors)
        and ``set_params(params)`` (copies them back in).

    Examples
    --------
    >>> wacky = WackyLearningRateAnnealer(0.1, 0.01, patience=2)
    >>> wacky.simulate(10, train_losses=[3.0] + [2.0] * 9)
    [0.1, 0.1, 0.1, 0.1, 0.01, 0.01]
    """

    _state_keys = ('learning_rate', 'patience_left', 'best_train_loss',
                   'best_valid_loss', 'kept_params')

    def __init__(self, learning_rate, min_learning_rate, patience=40,
                 train_improvement_threshold=0.995, valid_improvement_threshold=0.99995,
                 reset_on_decay=None):
        rate = _rate('learning_rate', learning_rate)
        fraction = 'a number in (0, 1]'
        self.min_learning_rate = _number(
            'min_learning_rate', min_learning_rate,
            f'a number in (0, learning_rate) = (0, {rate})', lambda x: 0 < x < rate)
        self.patience = _count('patience', patience, 1)
        self.train_improvement_threshold = _number(
            'train_improvement_threshold', train_improvement_threshold, fraction,
            lambda x: 0 < x <= 1)
        self.valid_improvement_threshold = _number(
            'valid_improvement_threshold', valid_improvement_threshold, fraction,
            lambda x: 0 < x <= 1)
        if reset_on_decay not in RESET_CHOICES:
            raise ConfigError(f"reset_on_decay must be None, 'training' or 'validation'; "
                              f'received {reset_on_decay!r}')
        super().__init__(rate)
        self.reset_on_decay = reset_on_decay
        self.patience_left = self.patience
        self.best_train_loss = math.inf
        self.best_valid_loss = math.inf
        self.kept_params = None  # {name: tensor} from net.get_params(), or None

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Refill or use patience; drop the rate or stop when it runs out."""
        refill = self._see('training', train_loss, net)
        if valid_loss is not None:
            refill = self._see('validation', valid_loss, net) or refill
        if refill:
            self.patience_left = self.patience
            return False, None
        self.patience_left -= 1
        if self.patience_left > 0:
            return False, None
        return self._decay(net)

    def _see(self, kind, loss, net):
        """Record a 'training' or 'validation' loss; return whether it refills patience."""
        if kind == 'training':
            best, threshold = self.best_train_loss, self.train_improvement_threshold
            self.best_train_loss = min(best, loss)
        else:
            best, threshold = self.best_valid_loss, self.valid_improvement_threshold
            self.best_valid_loss = min(best, loss)
        if loss < best and self.reset_on_decay == kind and net is not None:
            self.kept_params = net.get_params()
        return loss < best * threshold

    def _decay(self, net):
        rate = self.learning_rate / 10
        if rate < self.min_learning_rate * (1 - 1e-6):
            return True, (f'stopping: the learning rate reached its minimum '
                          f'({self.min_learning_rate:g})')
        self.learning_rate = rate
        self.patience_left = self.patience
        message = f'patience ran out; learning rate decayed to {rate:g}'
        if self.reset_on_decay and self.kept_params is not None and net is not None:
            net.set_params(self.kept_params)
            message += f'; weights reset to those of the best {self.reset_on_decay} loss'
        return False, message


def set_learning_rate(optimizer, rate):
    """Set the learning rate of every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group['lr'] = float(rate)


class LearningRule(_KeyedState):
    """Base class of the learning rules; each makes a torch optimizer.

    Subclasses implement :meth:`make_optimizer` and, if they change during
    training, :meth:`epoch_done` and ``_state_keys``.

    Parameters
    ----------
    learning_rate : float or LearningRateAdjuster
        A float is a constant rate (it becomes a :class:`ConstantLearningRate`).
        An annealer belongs to one rule only, since its rule advances it once
        per epoch.

    Attributes
    ----------
    annealer : LearningRateAdjuster
        Sets the learning rate of each epoch.
    """

    def __init__(self, learning_rate):
        self.annealer = _own_annealer(learning_rate)

    def make_optimizer(self, params):
        """Return a ``torch.optim.Optimizer`` over ``params`` at the annealer's rate.

        Parameters
        ----------
        params : iterable of tensors or parameter-group dicts
        """
        raise NotImplementedError(f'{type(self).__name__} must implement make_optimizer(params)')

    def epoch_done(self, epoch, train_loss, optimizer):
        """Adjust the rule after an epoch (called after the annealer's); no-op here."""

    def state_dict(self):
        """Return the changing state, the annealer's included, as a plain dict."""
        return {**super().state_dict(), 'annealer': self.annealer.state_dict()}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        self.annealer.load_state_dict(state['annealer'])


def _own_annealer(learning_rate):
    """Return the annealer for a new rule; a float becomes a constant one."""
    if isinstance(learning_rate, LearningRateAdjuster):
        if getattr(learning_rate, '_has_rule', False):
            raise ConfigError(
                f'learning_rate: this {type(learning_rate).__name__} already belongs to '
                f'another learning rule, and sharing it would advance its state twice '
                f'per epoch; expected a new annealer for each rule; received the same '
                f'object again')
        learning_rate._has_rule = True
        return learning_rate
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
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
    up to ``max_momentum`` (so a momentum of 0 stays 0); an equal loss is not
    worse.

    Parameters
    ----------
    initial_momentum : float
        The momentum of the first epoch, in [0, 1).
    max_momentum : float
        The cap, in [initial_momentum, 1).
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

    def __init__(self, initial_momentum, max_momentum, learning_rate):
        initial = _number('initial_momentum', initial_momentum, 'a number in [0, 1)',
                          lambda m: 0 <= m < 1)
        self.max_momentum = _number(
            'max_momentum', max_momentum,
            f'a number in [initial_momentum, 1) = [{initial}, 1)', lambda m: initial <= m < 1)
        super().__init__(learning_rate)
        self.initial_momentum = initial
        self.momentum = initial
        self.best_train_loss = math.inf

    def make_optimizer(self, params):
        """Return a :class:`MomentumOptimizer` at the current momentum."""
        return MomentumOptimizer(params, lr=self.annealer.learning_rate, momentum=self.momentum)

    def epoch_done(self, epoch, train_loss, optimizer):
        """Ramp the momentum up after a worse training loss; else record the best."""
        if train_loss <= self.best_train_loss:
            self.best_train_loss = train_loss
            return
        self.momentum = min(self.momentum * 1.01, self.max_momentum)
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

    def __init__(self, learning_rate, b1=0.9, b2=0.999, e=1e-8, lmbda=1 - 1e-8):
        decay_rate = 'a number in [0, 1)'
        self.b1 = _number('b1', b1, decay_rate, lambda x: 0 <= x < 1)
        self.b2 = _number('b2', b2, decay_rate, lambda x: 0 <= x < 1)
        self.e = _number('e', e, 'a number > 0', lambda x: x > 0)
        self.lmbda = _number('lmbda', lmbda, 'a number in (0, 1]', lambda x: 0 < x <= 1)
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

    def __init__(self, rho, epsilon, learning_rate):
        self.rho = _number('rho', rho, 'a number in [0, 1)', lambda x: 0 <= x < 1)
        self.epsilon = _number('epsilon', epsilon, 'a number > 0', lambda x: x > 0)
        super().__init__(learning_rate)

    def make_optimizer(self, params):
        """Return ``torch.optim.Adadelta`` over ``params``."""
        return torch.optim.Adadelta(params, lr=self.annealer.learning_rate, rho=self.rho,
                                    eps=self.epsilon, foreach=True)
