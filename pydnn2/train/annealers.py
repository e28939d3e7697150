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

import copy
import math

from .. import checks
from ..errors import ConfigError
from .best import BestWeights

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

    _state_keys = ('learning_rate',)

    def __init__(self, initial_learn_rate):
        self.learning_rate = _rate('initial_learn_rate', initial_learn_rate)
        self._has_rule = False

    def attach(self, keepers):
        """Called when training starts with the session's
        :class:`~pydnn2.train.best.Keepers`, for annealers that keep weights;
        nothing here."""

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
        epochs = checks.integer(epochs, 'epochs', 0)
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
        self.decay = checks.number(decay, 'decay', at_least=0)
        min_learning_rate = checks.number(
            min_learning_rate, 'min_learning_rate', above=0, at_most=rate, none=True,
            expected=f'None or a number in (0, learning_rate] = (0, {rate}]')
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
            and all(checks.is_integer(s) for s in starts)
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

    _state_keys = ('learning_rate', 'patience_left', 'best_train_loss', 'best_valid_loss')
    _MONITORS = {'training': 'train_loss', 'validation': 'valid_loss'}

    def __init__(self, learning_rate, min_learning_rate, patience=40,
                 train_improvement_threshold=0.995, valid_improvement_threshold=0.99995,
                 reset_on_decay=None):
        rate = _rate('learning_rate', learning_rate)
        self.min_learning_rate = checks.number(
            min_learning_rate, 'min_learning_rate', above=0, below=rate,
            expected=f'a number in (0, learning_rate) = (0, {rate})')
        self.patience = checks.integer(patience, 'patience', 1)
        self.train_improvement_threshold = checks.number(
            train_improvement_threshold, 'train_improvement_threshold', above=0, at_most=1)
        self.valid_improvement_threshold = checks.number(
            valid_improvement_threshold, 'valid_improvement_threshold', above=0, at_most=1)
        checks.one_of(reset_on_decay, 'reset_on_decay', RESET_CHOICES)
        super().__init__(rate)
        self.reset_on_decay = reset_on_decay
        self.patience_left = self.patience
        self.best_train_loss = math.inf
        self.best_valid_loss = math.inf
        self._keeper, self._shared = None, False   # the best weights, for reset_on_decay

    def attach(self, keepers):
        """Keep the best weights in the training session's keeper of them (one
        copy, shared with patience and EarlyStopping, checkpointed with the
        session) instead of a keeper of its own."""
        if self.reset_on_decay:
            self._keeper = keepers.get(self._MONITORS[self.reset_on_decay])
            self._shared = True

    @property
    def kept_params(self):
        """The weights a decay would reset the net to (a dict of tensors), or None."""
        return None if self._keeper is None else self._keeper.params

    def _kept(self):
        if self._keeper is None:
            self._keeper = BestWeights(self._MONITORS[self.reset_on_decay])
        return self._keeper

    def state_dict(self):
        """The changing state; the kept weights too unless a session keeps them."""
        own = self._keeper is not None and not self._shared
        return {**super().state_dict(), 'kept': self._keeper.state_dict() if own else None}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        if state.get('kept') is not None and not self._shared:
            self._kept().load_state_dict(state['kept'])

    def epoch_done(self, epoch, train_loss, valid_loss, net):
        """Refill or use patience; drop the rate or stop when it runs out."""
        refill = self._see('training', epoch, train_loss, net)
        if valid_loss is not None:
            refill = self._see('validation', epoch, valid_loss, net) or refill
        if refill:
            self.patience_left = self.patience
            return False, None
        self.patience_left -= 1
        if self.patience_left > 0:
            return False, None
        return self._decay(net)

    def _see(self, kind, epoch, loss, net):
        """Record a 'training' or 'validation' loss; return whether it refills patience."""
        if kind == 'training':
            best, threshold = self.best_train_loss, self.train_improvement_threshold
            self.best_train_loss = min(best, loss)
        else:
            best, threshold = self.best_valid_loss, self.valid_improvement_threshold
            self.best_valid_loss = min(best, loss)
        if self.reset_on_decay == kind and net is not None:
            self._kept().update({'epoch': epoch + 1, self._MONITORS[kind]: loss}, net)
        return loss < best * threshold

    def _decay(self, net):
        rate = self.learning_rate / 10
        if rate < self.min_learning_rate * (1 - 1e-6):
            return True, (f'stopping: the learning rate reached its minimum '
                          f'({self.min_learning_rate:g})')
        self.learning_rate = rate
        self.patience_left = self.patience
        message = f'patience ran out; learning rate decayed to {rate:g}'
        if self.reset_on_decay and net is not None and self._kept().restore(net):
            message += f'; weights reset to those of the best {self.reset_on_decay} loss'
        return False, message
