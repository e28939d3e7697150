"""Learning-rate annealers: the learning rate of each epoch, and when to stop.

An *annealer* (:class:`LearningRateDecay`, :class:`LearningRateSchedule`,
:class:`WackyLearningRateAnnealer`; a plain float becomes a
:class:`ConstantLearningRate`) belongs to a learning rule
(:mod:`pydnn2.train.rules`). After each epoch the training loop tells it the
epoch's losses, ``stop, message = annealer.epoch_done(epoch, train_loss,
valid_loss, net)``, and reads the next rate from ``annealer.learning_rate``.
``state_dict()`` holds what changes, so a checkpoint resumes it exactly;
``simulate()`` gives the rates without training.

Examples
--------
>>> LearningRateDecay(0.1, decay=0.5).simulate(3)
[0.1, 0.06666666666666667, 0.05]
>>> annealer = LearningRateSchedule([(0, 0.1), (2, 0.01)])
>>> annealer.epoch_done(0, train_loss=0.7, valid_loss=0.8, net=None)
(False, None)
>>> annealer.epoch_done(1, 0.6, 0.7, None)
(False, 'learning rate set to 0.01 by the schedule')
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

from .. import checks
from ..errors import ConfigError
from .best import BestNet

RESET_CHOICES = (None, 'training', 'validation')


def _rate(name, value):
    return checks.number(value, name, above=0)


def _losses(name, losses, epochs):
    """The per-epoch losses for :meth:`LearningRateAdjuster.simulate`."""
    if losses is None:
        return [1.0] * epochs
    losses = list(losses)
    if len(losses) < epochs:
        raise ConfigError(f'{name} needs one loss per simulated epoch ({epochs}); '
                          f'received {len(losses)}')
    return losses


class KeyedState:
    """``state_dict`` and ``load_state_dict`` over the attributes in ``_state_keys``."""

    _state_keys: tuple[str, ...] = ()

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


class LearningRateAdjuster(KeyedState):
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

    _state_keys: tuple[str, ...] = ('learning_rate',)

    def __init__(self, initial_learn_rate):
        self.learning_rate = _rate('initial_learn_rate', initial_learn_rate)
        self._training_rule = None      # the rule stepping it in a running train()

    def bind(self, rule):
        """Mark this annealer as stepped by ``rule`` for one training run.

        An annealer may be given to several rules (pydnn made one rule, then
        another with the same annealer, and trained only the second); only a
        second run stepping it while the first still trains is refused.
        """
        if self._training_rule is not None and self._training_rule is not rule:
            raise ConfigError(
                f'learning_rate: this {type(self).__name__} is being stepped by the '
                f'{type(self._training_rule).__name__} of a training run that has not ended; '
                f'two rules stepping it at once would advance it twice per epoch; expected a '
                f'new annealer for the {type(rule).__name__}; received the same object')
        self._training_rule = rule

    def release(self, rule):
        """End :meth:`bind` when ``rule``'s training run ends."""
        if self._training_rule is rule:
            self._training_rule = None

    def attach(self, best):
        """Called when training starts with the run's :class:`~pydnn2.train.best.BestNet`,
        the one keeper of the best weights, for annealers that reset to them (they ask
        its documented hooks ``track`` and ``restore``); nothing here."""

    def final_epochs(self) -> str | None:
        """Called once before the final epochs (which do not step the annealer);
        may set the rate they use. Returns a message or None; nothing here."""
        return None

    def epoch_done(self, epoch: int, train_loss: float, valid_loss: float | None,
                   net: Any) -> tuple[bool, str | None]:
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

    def simulate(self, epochs: int, train_losses: Sequence[float] | None = None,
                 valid_losses: Sequence[float | None] | None = None) -> list[float]:
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
        epochs = checks.integer(epochs, 'epochs', 0)
        train_losses = _losses('train_losses', train_losses, epochs)
        valid_losses = _losses('valid_losses', valid_losses, epochs)
        annealer = copy.copy(self)          # its changing state copied, nothing shared
        annealer.load_state_dict(copy.deepcopy(self.state_dict()))
        annealer._training_rule = None
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
    """Inverse-time decay: after ``k`` epochs the rate is ``learning_rate / (1 + k * decay)``.

    Parameters
    ----------
    learning_rate : float
        The rate of the first epoch.
    decay : float
        How fast the rate falls; 0 keeps it constant.
    min_learning_rate : float, optional
        A floor, as in pydnn: once the formula would give a rate at or below
        it, the rate stays at the last one above it.

    Examples
    --------
    >>> LearningRateDecay(0.1, decay=1.0, min_learning_rate=0.03).simulate(5)
    [0.1, 0.05, 0.03333333333333333, 0.03333333333333333, 0.03333333333333333]
    """

    _state_keys = ('learning_rate', 'epochs')

    def __init__(self, learning_rate, decay, min_learning_rate=None):
        rate = _rate('learning_rate', learning_rate)
        self.decay = checks.number(decay, 'decay', at_least=0)
        min_learning_rate = checks.number(
            min_learning_rate, 'min_learning_rate', above=0, at_most=rate, none=True,
            expected=f'None or a number in (0, learning_rate] = (0, {rate}]')
        super().__init__(rate)
        self.initial_learning_rate = rate
        self.min_learning_rate = min_learning_rate
        self.epochs = 0           # epochs seen

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Set the next rate by the formula, unless it would reach the floor; never stop."""
        self.epochs += 1
        rate = self.initial_learning_rate / (1 + self.epochs * self.decay)
        if self.min_learning_rate is None or rate > self.min_learning_rate:
            self.learning_rate = rate
        return False, None


def _schedule_pairs(schedule):
    """Check a schedule of (epoch, rate) pairs; return it as a tuple of tuples."""
    expected = ('a non-empty sequence of (epoch, learning_rate) pairs with increasing '
                'epochs >= 0 and rates > 0')
    try:
        pairs = tuple((start, rate) for start, rate in schedule)
    except (TypeError, ValueError):
        raise ConfigError(f'schedule must be {expected}; received {schedule!r}') from None
    starts = [start for start, _ in pairs]
    fine = (pairs and all(checks.is_integer(s) and s >= 0 for s in starts)
            and all(a < b for a, b in zip(starts, starts[1:])))
    if not fine:
        raise ConfigError(f'schedule must be {expected}; received {schedule!r}')
    return tuple((int(start), _rate(f'the rate for epoch {start} in schedule', rate))
                 for start, rate in pairs)


class LearningRateSchedule(LearningRateAdjuster):
    """A learning rate that follows a table of (epoch, rate) pairs.

    Training starts at the first pair's rate; after ``k`` epochs the rate is
    that of the last pair whose epoch is ``<= k`` (pydnn's rule, so a first
    pair at an epoch other than 0 still gives the starting rate).

    Parameters
    ----------
    schedule : sequence of (int, float)
        Pairs of a 0-based epoch and its rate, the epochs increasing.

    Examples
    --------
    >>> LearningRateSchedule(((0, 0.1), (2, 0.01), (3, 0.001))).simulate(4)
    [0.1, 0.1, 0.01, 0.001]
    """

    _state_keys = ('learning_rate', 'epochs')

    def __init__(self, schedule):
        pairs = _schedule_pairs(schedule)
        super().__init__(pairs[0][1])
        self.schedule = pairs
        self.epochs = 0           # epochs seen

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Set the rate of the next epoch; report a change; never stop."""
        self.epochs += 1
        due = [rate for start, rate in self.schedule[1:] if start == self.epochs]
        if not due:
            return False, None
        self.learning_rate = due[0]
        return False, f'learning rate set to {due[0]:g} by the schedule'


class WackyLearningRateAnnealer(LearningRateAdjuster):
    """Divide the learning rate by 10 when training is frustrated too long (pydnn's rule).

    After each epoch the training and validation losses are compared with the
    losses at the last *qualifying* improvement: a training loss below that
    one times ``train_improvement_threshold``, or a validation loss below its
    one times ``valid_improvement_threshold``, qualifies, becomes the new
    reference and ends the frustration. Any other epoch adds one to the
    frustration, and an epoch that finds it already at ``patience`` divides
    the rate by 10 instead (so the rate drops on the ``patience + 1``-th
    epoch without a qualifying improvement) and starts over; training stops
    when the new rate would fall below ``min_learning_rate``. On a drop the
    net can be reset to the weights of its best training or validation loss.
    The final epochs use the rate at which the best validation loss came (the
    best training loss, without a validation set).

    Parameters
    ----------
    learning_rate : float
        The rate of the first epoch.
    min_learning_rate : float or None
        Training stops instead of dropping the rate below this; None means
        ``learning_rate / 100`` (as in pydnn).
    patience : int
        Frustrated epochs tolerated before the rate drops.
    train_improvement_threshold, valid_improvement_threshold : float
        In (0, 1]: how much a loss must improve on the reference to qualify.
    reset_on_decay : {None, 'training', 'validation'}
        Whose best weights to restore on each drop; None keeps the current
        weights. Needs a net with ``get_params()`` (a dict of copied tensors)
        and ``set_params(params)`` (copies them back in).

    Examples
    --------
    >>> wacky = WackyLearningRateAnnealer(0.1, 0.01, patience=2)
    >>> wacky.simulate(10, train_losses=[3.0] + [2.0] * 9)
    [0.1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    """

    _state_keys = ('learning_rate', 'frustration', 'best_train_loss', 'best_valid_loss',
                   'best_valid_rate', 'frust_train_loss', 'frust_valid_loss')
    _MONITORS = {'training': 'train_loss', 'validation': 'valid_loss'}

    def __init__(self, learning_rate, min_learning_rate, patience=40,
                 train_improvement_threshold=0.995, valid_improvement_threshold=0.99995,
                 reset_on_decay=None):
        rate = _rate('learning_rate', learning_rate)
        self.min_learning_rate = checks.number(
            min_learning_rate, 'min_learning_rate', above=0, below=rate, none=True,
            expected=f'None or a number in (0, learning_rate) = (0, {rate})')
        if self.min_learning_rate is None:
            self.min_learning_rate = rate / 100
        self.patience = checks.integer(patience, 'patience', 0)
        self.train_improvement_threshold = checks.number(
            train_improvement_threshold, 'train_improvement_threshold', above=0, at_most=1)
        self.valid_improvement_threshold = checks.number(
            valid_improvement_threshold, 'valid_improvement_threshold', above=0, at_most=1)
        checks.one_of(reset_on_decay, 'reset_on_decay', RESET_CHOICES)
        super().__init__(rate)
        self.reset_on_decay = reset_on_decay
        self.frustration = 0
        self.best_train_loss = self.best_valid_loss = math.inf
        self.frust_train_loss = self.frust_valid_loss = math.inf
        self.best_valid_rate = rate
        self._best, self._shared = None, False   # the keeper of the best weights, for resets

    def attach(self, best):
        """For ``reset_on_decay``: track the best weights in the training run's
        :class:`~pydnn2.train.best.BestNet` (one copy, shared with patience and
        EarlyStopping, checkpointed with the run), and reset through its
        :meth:`~pydnn2.train.best.BestNet.restore`, instead of keeping them itself."""
        if self.reset_on_decay:
            self._best, self._shared = best, True
            best.track(self._MONITORS[self.reset_on_decay])

    def _own(self):
        """The keeper of the best weights: the run's, or one of its own when the annealer
        runs outside ``train`` (``simulate``, a hand-written loop)."""
        if self._best is None:
            self._best = BestNet(self._MONITORS[self.reset_on_decay])
        return self._best

    def state_dict(self):
        """The changing state; the kept weights too unless a training run keeps them."""
        own = self._best is not None and not self._shared
        return {**super().state_dict(), 'kept': self._best.main.state_dict() if own else None}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        if state.get('kept') is not None and not self._shared:
            self._own().main.load_state_dict(state['kept'])

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Record the bests; end or add to the frustration; drop the rate or stop."""
        self._record_bests(epoch, train_loss, valid_loss, net)
        train_improved = train_loss < self.frust_train_loss * self.train_improvement_threshold
        valid_improved = (valid_loss is not None and
                          valid_loss < self.frust_valid_loss * self.valid_improvement_threshold)
        if train_improved or valid_improved:
            if train_improved:
                self.frust_train_loss = train_loss
            if valid_improved:
                self.frust_valid_loss = valid_loss
            self.frustration = 0
            return False, None
        if self.frustration >= self.patience:
            return self._decay(net)
        self.frustration += 1
        return False, None

    def _record_bests(self, epoch, train_loss, valid_loss, net):
        if valid_loss is not None and valid_loss < self.best_valid_loss:
            self.best_valid_loss, self.best_valid_rate = valid_loss, self.learning_rate
        elif self.best_valid_loss == math.inf and train_loss < self.best_train_loss:
            self.best_valid_rate = self.learning_rate     # no validation set: the training loss
        self.best_train_loss = min(self.best_train_loss, train_loss)
        if self.reset_on_decay and net is not None and not self._shared:   # (else the run's)
            loss = train_loss if self.reset_on_decay == 'training' else valid_loss
            monitor = self._MONITORS[self.reset_on_decay]
            self._own().update({'epoch': epoch + 1, monitor: loss}, net)

    def _decay(self, net):
        rate = self.learning_rate / 10
        if rate < self.min_learning_rate * (1 - 1e-9):     # a tenth of 0.08 is 0.008, not less
            return True, (f'stopping: the learning rate reached its minimum '
                          f'({self.min_learning_rate:g})')
        self.learning_rate = rate
        self.frustration = 0
        message = f'frustrated for {self.patience + 1} epochs; learning rate decayed to {rate:g}'
        if self.reset_on_decay and net is not None and self._own().restore(
                net, self._MONITORS[self.reset_on_decay]):
            message += f'; weights reset to those of the best {self.reset_on_decay} loss'
        return False, message

    def final_epochs(self):
        """The final epochs use the rate of the best validation loss (pydnn's rule)."""
        self.learning_rate = self.best_valid_rate
        return ('final epochs at the learning rate of the best validation loss, '
                f'{self.learning_rate:g}')
