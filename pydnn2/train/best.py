"""The one keeper of "the best weights so far".

Training keeps the weights of its best validation epoch (to restore them
after the main phase and to write the best-net file), ``patience`` counts
the epochs since that best, :class:`~pydnn2.train.callbacks.EarlyStopping`
keeps the best of whatever it monitors, and
:class:`~pydnn2.train.annealers.WackyLearningRateAnnealer` can reset the net
to its best training or validation weights. Each asks a :class:`Keepers`
registry for the :class:`BestWeights` of its criterion; the same criterion
gives the same keeper, so one copy of the weights serves them all, and the
registry is checkpointed with the session.

>>> keeper = BestWeights('valid_loss')
>>> [keeper.update({'epoch': e, 'valid_loss': v}) for e, v in enumerate([0.5, 0.4, 0.45], 1)]
[True, True, False]
>>> keeper.best, keeper.epoch, keeper.since
(0.4, 2, 1)
"""

from .. import checks


class BestWeights:
    """The best value of one figure of the epoch rows, when it came, and the
    weights the net had then.

    Parameters
    ----------
    monitor : str
        A key of the epoch row, e.g. ``'valid_loss'`` or ``'train_loss'``.
    mode : {'min', 'max'}
        Whether smaller or larger values are better.
    min_delta : float
        The least change that counts as an improvement.
    """

    def __init__(self, monitor='valid_loss', mode='min', min_delta=0.0):
        self.monitor = monitor
        self.mode = checks.one_of(mode, 'mode', ('min', 'max'))
        self.min_delta = checks.number(min_delta, 'min_delta', at_least=0)
        self.best = self.epoch = self.params = None
        self.since = 0           # epochs with a value since the best one
        self.seen = None         # the last epoch this keeper was updated with

    @property
    def key(self):
        """What the keeper keeps the best of, ``(monitor, mode, min_delta)``."""
        return self.monitor, self.mode, self.min_delta

    def better(self, value):
        """Whether ``value`` improves on the best so far."""
        if self.best is None:
            return True
        if self.mode == 'min':
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, row, net=None):
        """Take in an epoch's row; keep ``net``'s weights when the value improved.

        Returns True (improved), False (not), or None when the row has no
        value for the monitor. A second update with the same epoch changes
        nothing and returns the first one's answer, so keepers shared by
        several users are updated once per epoch whoever comes first.
        """
        value = row.get(self.monitor)
        if value is None:
            return None
        if row['epoch'] == self.seen:
            return self.epoch == self.seen
        self.seen = row['epoch']
        if not self.better(value):
            self.since += 1
            return False
        self.best, self.epoch, self.since = value, row['epoch'], 0
        if net is not None:
            self.params = net.get_params()
        return True

    def restore(self, net):
        """Put the best weights back into ``net``; False if none were kept."""
        if self.params is None:
            return False
        net.set_params(self.params)
        return True

    def state_dict(self):
        """The keeper's state: plain numbers and a dict of tensors."""
        return {'best': self.best, 'epoch': self.epoch, 'since': self.since,
                'seen': self.seen, 'params': self.params}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`."""
        self.best, self.epoch, self.since = state['best'], state['epoch'], state['since']
        self.seen, self.params = state['seen'], state['params']


class Keepers:
    """The keepers of one training session, one per criterion."""

    def __init__(self):
        self._keepers = {}

    def get(self, monitor='valid_loss', mode='min', min_delta=0.0):
        """The keeper of this criterion, made on first request."""
        keeper = BestWeights(monitor, mode, min_delta)
        return self._keepers.setdefault(keeper.key, keeper)

    def update(self, row, net):
        """Update every keeper with a finished epoch's row."""
        for keeper in self._keepers.values():
            keeper.update(row, net)

    def state_dict(self):
        """Every keeper's state, by criterion."""
        return [{'key': list(k), 'state': v.state_dict()} for k, v in self._keepers.items()]

    def load_state_dict(self, states):
        """Restore :meth:`state_dict` (making the keepers it names)."""
        for item in states:
            self.get(*item['key']).load_state_dict(item['state'])
