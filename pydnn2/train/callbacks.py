"""Callbacks: code that runs at the start and end of training, epochs and batches.

Pass them as ``net.train(..., callbacks=[...])``. Each hook receives the net
and a plain dict of what happened (``logs``): for an epoch, the row of the
epoch table (``epoch, phase, train_loss, train_error, valid_loss,
valid_error, test_loss, test_error, learning_rate, seconds`` and any
``valid_<metric>``); for a batch, ``epoch``, ``batch`` and ``loss`` (a
device tensor: reading it with ``float()`` waits for the device, so only do
it when you need it).

A hook asks training to stop by raising :class:`StopTraining` (or by
calling ``self.trainer.stop.ask(reason)``): the request ends the phase after
the epoch, or before the next batch from a batch hook (under torchrun, at
the ranks' next vote, which carries it to every rank); see
:mod:`pydnn2.train.stop`. :class:`StopTraining` is caught where the hooks are
called, so the callbacks after the one that raised it still run.

A callback's own state (what it has counted or collected) comes back after
a resume: checkpoints save each callback's :meth:`Callback.state_dict` and
a resumed run loads it into the callback of the same class in the same
place of the list, before ``on_train_begin``. State is what changes while
training runs; the constructor's arguments are configuration, never state, so
a resumed callback built with new arguments uses them.

While training runs, ``self.trainer`` is the
:class:`~pydnn2.train.trainer.Trainer` (``trainer.net``, ``trainer.config``,
``trainer.rule``, ``trainer.run``, ``trainer.strategy``, ``trainer.stop``,
``trainer.session``, ``trainer.history``).

Callbacks that write files or print (``rank_zero_only = True``) run only on
the first process when training is distributed with ``torch.distributed``.

Examples
--------
>>> class CountBatches(Callback):
...     def __init__(self):
...         self.batches = 0
...     def on_minibatch_end(self, net, logs):
...         self.batches += 1
"""

from __future__ import annotations

import copy
import csv
import inspect
import io
import json
import math
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import checks
from ..errors import ConfigError
from ..files import atomic_write_text
from ..table import Table

if TYPE_CHECKING:
    from ..net import NN


class StopTraining(Exception):
    """Raised by a callback to end the current phase after this epoch (or, from a batch
    hook, before the next batch)."""


def is_rank_zero():
    """Deprecated: whether this process is rank 0 (the run's strategy says so now:
    :attr:`~pydnn2.train.strategy.Strategy.is_writer`)."""
    warnings.warn('is_rank_zero is deprecated; a callback asks self.trainer.strategy.is_writer',
                  DeprecationWarning, stacklevel=2)
    from .strategy import process_is_writer
    return process_is_writer()


class Callback:
    """Base class: every hook does nothing; override the ones you need.

    A callback that counts or collects something across epochs returns it
    from :meth:`state_dict` (plain data and tensors) and takes it back in
    :meth:`load_state_dict`, so that it goes on exactly after a resume. The
    default saves the instance attributes that are plain data, except those
    named like a parameter of the class's ``__init__`` (configuration, which the
    resumed run's own arguments give).

    Attributes
    ----------
    trainer : pydnn2.train.trainer.Trainer
        The run's trainer, set when training starts (None before).
    session : pydnn2.train.trainer.Trainer
        The former name of ``trainer`` (it answers what the old session did:
        ``run``, ``config``, ``rule``, ``optimizer``, ``keepers``, ``stop_signal``,
        ``best_file`` ...), kept for callbacks written before the trainer existed.
    """

    rank_zero_only = False
    trainer = None     # the run's Trainer, set when training starts
    session = None     # the former name of trainer

    def state_dict(self) -> dict[str, Any]:
        """What the callback has collected so far (by default: its plain attributes
        that are not constructor arguments; numpy scalars and enums are saved as the
        Python numbers they equal)."""
        configuration = _init_parameters(type(self))
        return {k: _plain(copy.deepcopy(v)) for k, v in vars(self).items()
                if k not in configuration and _is_state(v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state_dict`'s state (after a resume); entries named like a
        constructor argument (which older checkpoints saved) are left out."""
        configuration = _init_parameters(type(self))
        for key, value in state.items():
            if key not in configuration:
                setattr(self, key, copy.deepcopy(value))

    def on_train_begin(self, net: NN, logs: dict[str, Any]) -> None:
        """Before the first epoch; ``logs`` holds the training options."""

    def on_train_end(self, net: NN, logs: dict[str, Any]) -> None:
        """After the last phase; ``logs['history']`` is the history."""

    def on_train_error(self, net: NN, logs: dict[str, Any]) -> None:
        """When training raises instead of ending (an error in the loop, a callback or
        the data; not a signal, which ends training through ``on_train_end``):
        ``logs['error']`` is the exception, ``logs['history']`` the epochs done. Release
        what the callback holds (files, a tracking run) here; the error is raised
        again after every callback's hook has run, and an error raised by this hook
        is reported as a warning rather than hiding it. Called on the callbacks
        whose ``on_train_begin`` had run."""

    def on_epoch_begin(self, net: NN, logs: dict[str, Any]) -> None:
        """Before an epoch; ``logs`` holds ``epoch``, ``phase``, ``learning_rate``."""

    def on_epoch_end(self, net: NN, logs: dict[str, Any]) -> None:
        """After an epoch and its evaluation; ``logs`` is the epoch's row."""

    def on_minibatch_begin(self, net: NN, logs: dict[str, Any]) -> None:
        """Before a batch; ``logs`` holds ``epoch`` and ``batch`` (from 1)."""

    def on_minibatch_end(self, net: NN, logs: dict[str, Any]) -> None:
        """After a batch's update; ``logs`` adds ``loss`` (a device tensor)."""

    def on_checkpoint(self, net: NN, logs: dict[str, Any]) -> None:
        """After a finished epoch's ``on_epoch_end``, its annealer and learning rule: the
        run's state is what a checkpoint of it holds (``logs`` holds ``epoch``,
        ``phase`` and ``epochs_done``). :class:`~pydnn2.train.checkpoints.ModelCheckpoint`
        writes here."""


def _init_parameters(cls):
    """The names of ``cls.__init__``'s parameters (its configuration), plus the
    attributes the trainer sets."""
    try:
        names = set(inspect.signature(cls.__init__).parameters) - {'self'}
    except (TypeError, ValueError):
        names = set()
    return names | {'trainer', 'session'}


def overrides(callback, hook):
    """Whether ``callback`` implements ``hook`` (so the loop can skip the call)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


def _plain(value):
    """``value`` with numpy numbers and subclasses of bool, int, float, str, list and
    tuple (enums, named tuples) made the plain Python values a safe file can load."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (np.number, np.bool_)):
        return value.item()
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _is_state(value):
    """Plain data a checkpoint can hold: numbers, strings, None, tensors, and
    lists and dicts of them."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, np.number,
                                           np.bool_)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_state(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_state(v) for k, v in value.items())
    return False


class CallbackList:
    """Calls a hook on every callback, in order; the one place a callback's
    :class:`StopTraining` is caught.

    Parameters
    ----------
    callbacks : list of Callback
    trainer : pydnn2.train.trainer.Trainer, optional
        Given to every callback as ``callback.trainer`` (and by its former name,
        ``callback.session``).
    writer : bool
        Whether this process is rank 0: the others leave out ``rank_zero_only``
        callbacks.
    stop : pydnn2.train.stop.StopRequest, optional
        Asked when a hook raises :class:`StopTraining` (without one, it propagates).
    say : callable, optional
        Told ``'stopped by ...'`` when a hook asks to stop.
    """

    def __init__(self, callbacks, trainer=None, writer=True, stop=None, say=None):
        callbacks = list(callbacks or [])
        for c in callbacks:
            if not isinstance(c, Callback):
                raise ConfigError('callbacks must be pydnn2 Callback instances; '
                                  f'received {type(c).__name__}')
            c.trainer = c.session = trainer
        if not writer:
            callbacks = [c for c in callbacks if not c.rank_zero_only]
        self.callbacks, self.stop, self.say = callbacks, stop, say
        self.begun = 0     # how many have run on_train_begin (on_train_error goes to these)
        self.batch_hooks = any(overrides(c, h) for c in callbacks
                               for h in ('on_minibatch_begin', 'on_minibatch_end'))

    def __call__(self, hook, net, logs):
        for k, c in enumerate(self.callbacks):
            try:
                getattr(c, hook)(net, logs)
            except StopTraining as exc:
                if self.stop is None:
                    raise
                reason = f'{type(c).__name__}: {exc}' if str(exc) else type(c).__name__
                if self.say is not None:
                    self.say(f'      stopped by {reason}')
                self.stop.ask(reason)
            if hook == 'on_train_begin':
                self.begun = k + 1

    def failed(self, net, logs):
        """Call ``on_train_error`` on the callbacks whose ``on_train_begin`` has run,
        each in turn even when one raises: their errors become warnings, so that the
        error training raised is the one the caller sees."""
        for c in self.callbacks[:self.begun]:
            try:
                c.on_train_error(net, logs)
            except Exception as exc:        # noqa: BLE001 - reported, the first error goes on
                warnings.warn(f'{type(c).__name__}.on_train_error raised '
                              f'{type(exc).__name__}: {exc}', RuntimeWarning, stacklevel=2)

    def state_dict(self):
        """Each callback's class name and state, in order."""
        return [{'class': type(c).__name__, 'state': c.state_dict()} for c in self.callbacks]

    def load_state_dict(self, states):
        """Give the k-th callback of each class the k-th saved state of that class (so a
        table shown in one run and not in another, or callbacks that run on rank 0
        alone, leave the others' states where they belong)."""
        saved = {}
        for entry in states:
            saved.setdefault(entry['class'], []).append(entry['state'])
        for callback in self.callbacks:
            queue = saved.get(type(callback).__name__)
            if queue:
                callback.load_state_dict(queue.pop(0))


def _fmt(value, percent=False):
    if value is None:
        return ''
    return f'{100 * value:.2f}%' if percent else f'{value:.4f}'


class EpochTable(Callback):
    """Prints the epoch table: one row per epoch (the default progress display)."""

    rank_zero_only = True
    TABLE = Table(('epoch', 'phase', 'train loss', 'err', 'valid loss', 'err', 'test loss',
                   'err', 'rate', 'time'), right=range(10),
                  widths=(5, 5, 10, 8, 10, 8, 10, 8, 10, 8), gap=1)

    def __init__(self, write=print):
        self.write = write

    @classmethod
    def format_row(cls, row):
        """One line of the epoch table."""
        return cls.TABLE.line((
            str(row['epoch']), row['phase'], _fmt(row['train_loss']),
            _fmt(row['train_error'], True), _fmt(row['valid_loss']),
            _fmt(row['valid_error'], True), _fmt(row['test_loss']),
            _fmt(row['test_error'], True), f'{row["learning_rate"]:.3g}',
            f'{row["seconds"]:.2f}s'))

    def on_train_begin(self, net, logs):
        self.write(self.TABLE.line(self.TABLE.header))

    def on_epoch_end(self, net, logs):
        self.write(self.format_row(logs))

    def state_dict(self):
        """Nothing to keep."""
        return {}


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    The best value, its epoch and its weights are kept by the run's
    :class:`~pydnn2.train.best.BestNet`: this callback asks it for the record
    of its criterion when training starts (:meth:`~pydnn2.train.best.BestNet.track`,
    shared with anything else that keeps the same best, and checkpointed
    there) and, when it stops training with ``restore_best``, to put the best
    weights back (:meth:`~pydnn2.train.best.BestNet.restore`).
    ``train(patience=n)`` adds one on the best net's own criterion, for the
    main phase, that restores nothing itself (``restore_best`` decides).

    Parameters
    ----------
    monitor : str
        A key of the epoch row, e.g. ``'valid_loss'``, ``'valid_error'`` or
        ``'valid_accuracy'`` (with ``eval_metric=Accuracy()``).
    patience : int
        Epochs without improvement before stopping.
    mode : {'min', 'max'}
        Whether smaller or larger values are better.
    min_delta : float
        The least change that counts as an improvement.
    restore_best : bool
        When it stops training, put back the weights of the best epoch.
    phase : {None, 'main', 'final'}
        Watch the epochs of this phase only (None: both).
    """

    def __init__(self, monitor='valid_loss', patience=10, mode='min', min_delta=0.0,
                 restore_best=True, phase=None):
        self.mode = checks.one_of(mode, 'mode', ('min', 'max'), where='EarlyStopping')
        self.patience = checks.integer(patience, 'patience', 1, where='EarlyStopping')
        self.monitor, self.restore_best = monitor, restore_best
        self.min_delta = checks.number(min_delta, 'min_delta', at_least=0,
                                       where='EarlyStopping')
        self.phase = checks.one_of(phase, 'phase', (None, 'main', 'final'),
                                   where='EarlyStopping')
        self.keeper = None      # the BestNet's record of this criterion, while training

    def on_train_begin(self, net, logs):
        self.keeper = self.trainer.best.track(self.monitor, self.mode, self.min_delta)

    def on_epoch_end(self, net, logs):
        if self.phase is not None and logs.get('phase') != self.phase:
            return
        if logs.get(self.monitor) is None:
            if logs.get('phase') == 'main':
                raise ConfigError(f'EarlyStopping: the epoch row has no {self.monitor!r}; '
                                  'available: '
                                  f'{sorted(k for k, v in logs.items() if v is not None)}')
            return
        keeper = self.keeper     # (once per epoch: a figure another callback added counts)
        if keeper.update(logs, net) or keeper.since < self.patience:
            return
        if self.restore_best:
            self.trainer.best.restore(net, self.monitor, self.mode, self.min_delta)
        raise StopTraining(f'{self.monitor} has not improved for {self.patience} epochs '
                           f'(best {keeper.best:.4g} in epoch {keeper.epoch})')

    def state_dict(self):
        """Nothing of its own: the BestNet holds the best and is checkpointed."""
        return {}


class HistoryLogger(Callback):
    """Write the history to ``path`` after every epoch: CSV or JSON (by extension
    or ``format``), atomically, so the file is always complete."""

    rank_zero_only = True

    def __init__(self, path, format=None):
        self.path = os.fspath(path)
        self.format = checks.one_of(format or ('json' if self.path.endswith('.json') else 'csv'),
                                    'format', ('csv', 'json'), where='HistoryLogger')
        self.rows = []

    def on_train_begin(self, net, logs):
        if logs['epochs_done'] == 0:     # a fresh run; a resumed one keeps its rows
            self.rows = []

    def on_epoch_end(self, net, logs):
        self.rows.append({k: v for k, v in logs.items() if _is_plain(v)})
        atomic_write_text(self.path, self._text())

    def state_dict(self):
        """The rows written so far."""
        return {'rows': copy.deepcopy(self.rows)}

    def _text(self):
        if self.format == 'json':
            return json.dumps(self.rows, indent=1)
        out = io.StringIO()
        fields = list(dict.fromkeys(k for row in self.rows for k in row))
        writer = csv.DictWriter(out, fields)
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()


def _is_plain(value):
    return value is None or isinstance(value, (str, int, bool)) or (
        isinstance(value, float) and math.isfinite(value))


class StopWhen(Callback):
    """Stop the phase when ``condition(logs)`` is true after an epoch (neon's
    callback-driven stop), e.g. ``StopWhen(lambda r: r['valid_error'] < 0.01)``."""

    def __init__(self, condition, message='the stopping condition holds'):
        if not callable(condition):
            raise ConfigError(f'StopWhen needs a callable condition; received {condition!r}')
        self.condition, self.message = condition, message

    def state_dict(self):
        """Nothing to keep."""
        return {}

    def on_epoch_end(self, net, logs):
        if self.condition(logs):
            raise StopTraining(self.message)
