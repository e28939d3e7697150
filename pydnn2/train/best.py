"""The one keeper of "the best weights so far": :class:`BestNet`.

Training keeps the weights of its best validation epoch (to restore them
after the main phase and to write the best-net file), ``patience`` and
:class:`~pydnn2.train.callbacks.EarlyStopping` count the epochs since the
best of what they monitor, and
:class:`~pydnn2.train.annealers.WackyLearningRateAnnealer` can reset the net
to its best training or validation weights. The run's :class:`BestNet`, which
its trainer owns, is the one keeper: the others ask it for the
:class:`BestWeights` record of their criterion (:meth:`BestNet.track`) and
to put weights back (:meth:`BestNet.restore`). The same criterion gives the
same record (a :class:`Keepers` registry), so one copy of the weights serves
them all, and it is checkpointed once.

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


class BestNet:
    """The one keeper of a training run's best weights, and of its best-net file.

    The run's :class:`~pydnn2.train.trainer.Trainer` owns one and updates it with
    every finished epoch's row; when the net improves on its own criterion
    (``monitor``: the validation loss, or the training loss without a
    validation set) it writes ``<name>_best_net.pt`` (by ``write``; never
    without an output folder), and the trainer puts the best weights back
    after the main phase. Everything else that needs "the best so far" asks it
    through two documented hooks, so one copy of each criterion's weights
    serves them all and is checkpointed once:

    - :meth:`track`: the :class:`BestWeights` record of a criterion, updated with
      every epoch from then on (``EarlyStopping`` reads its ``since`` and ``best``);
    - :meth:`restore`: put a criterion's best weights back into the net
      (``EarlyStopping(restore_best=True)``,
      :class:`~pydnn2.train.annealers.WackyLearningRateAnnealer`'s reset).

    Parameters
    ----------
    monitor : str
        The best net's criterion (minimised).
    path : str, optional
        The best-net file (None: none is written).
    write : callable, optional
        ``write(state, path)``: how the file is written (the trainer's background
        writer on rank 0; None on the other ranks).

    Examples
    --------
    >>> best = BestNet('valid_loss')
    >>> best.update({'epoch': 1, 'valid_loss': 0.5}), best.update({'epoch': 2, 'valid_loss': 0.6})
    (True, False)
    >>> best.track('valid_loss') is best.main, best.since
    (True, 1)
    """

    def __init__(self, monitor='valid_loss', path=None, write=None):
        self._keepers = Keepers()
        self.main = self._keepers.get(monitor)
        self.path, self._write = path, write

    monitor = property(lambda self: self.main.monitor, doc='The best net\'s criterion.')
    best = property(lambda self: self.main.best, doc='The best value so far, or None.')
    since = property(lambda self: self.main.since, doc='Epochs since that best.')
    params = property(lambda self: self.main.params, doc='The best net\'s weights (or None).')

    def track(self, monitor='valid_loss', mode='min', min_delta=0.0):
        """The record of a criterion's best (made on first request, shared after), updated
        with every epoch's row from then on."""
        return self._keepers.get(monitor, mode, min_delta)

    def get(self, monitor='valid_loss', mode='min', min_delta=0.0):
        """:meth:`track`'s name in the :class:`Keepers` protocol (annealers' ``attach``)."""
        return self.track(monitor, mode, min_delta)

    def update(self, row, net=None):
        """Take in an epoch's row: the best net's criterion first (returning whether it
        improved, or None without a value), then every tracked one."""
        improved = self.main.update(row, net)
        self._keepers.update(row, net)
        return improved

    def save(self, stamp, net_state):
        """Write the best net's file, ``stamp(net_state(net, best weights))``, when this
        process writes one."""
        if self.path is not None and self._write is not None:
            self._write(stamp(net_state(self.params)), self.path)

    def restore(self, net, monitor=None, mode='min', min_delta=0.0):
        """Put the best weights of ``monitor`` (None: the best net's) back into ``net``;
        False when none were kept."""
        keeper = self.main if monitor is None else self.track(monitor, mode, min_delta)
        return keeper.restore(net)

    def state_dict(self):
        """Every criterion's record (the checkpoint's ``'keepers'`` entry)."""
        return self._keepers.state_dict()

    def load_state_dict(self, states):
        """Restore :meth:`state_dict`."""
        self._keepers.load_state_dict(states)
