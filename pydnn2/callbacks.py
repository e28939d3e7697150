"""Callbacks: code that runs at the start and end of training, epochs and batches.

Pass them as ``net.train(..., callbacks=[...])``. Each hook receives the net
and a plain dict of what happened (``logs``): for an epoch, the row of the
epoch table (``epoch, phase, train_loss, train_error, valid_loss,
valid_error, test_loss, test_error, learning_rate, seconds`` and any
``valid_<metric>``); for a batch, ``epoch``, ``batch`` and ``loss`` (a
device tensor: reading it with ``float()`` waits for the device, so only do
it when you need it). A hook stops the current phase by raising
:class:`StopTraining`.

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

import csv
import json
import math
import os

import torch

from .errors import ConfigError
from .io import atomic_write_text


class StopTraining(Exception):
    """Raised by a callback to end the current phase after this epoch or batch."""


def is_rank_zero():
    """True unless this is a non-first process of a distributed run."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    rank_zero_only = False

    def on_train_begin(self, net, logs):
        """Before the first epoch; ``logs`` holds the training options."""

    def on_train_end(self, net, logs):
        """After the last phase; ``logs['history']`` is the history."""

    def on_epoch_begin(self, net, logs):
        """Before an epoch; ``logs`` holds ``epoch``, ``phase``, ``learning_rate``."""

    def on_epoch_end(self, net, logs):
        """After an epoch and its evaluation; ``logs`` is the epoch's row."""

    def on_minibatch_begin(self, net, logs):
        """Before a batch; ``logs`` holds ``epoch`` and ``batch`` (from 1)."""

    def on_minibatch_end(self, net, logs):
        """After a batch's update; ``logs`` adds ``loss`` (a device tensor)."""


def overrides(callback, hook):
    """Whether ``callback`` implements ``hook`` (so the loop can skip the call)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class CallbackList:
    """Calls a hook on every callback (respecting rank_zero_only)."""

    def __init__(self, callbacks):
        callbacks = list(callbacks or [])
        for c in callbacks:
            if not isinstance(c, Callback):
                raise ConfigError('callbacks must be pydnn2.callbacks.Callback instances; '
                                  f'received {type(c).__name__}')
        if not is_rank_zero():
            callbacks = [c for c in callbacks if not c.rank_zero_only]
        self.callbacks = callbacks
        self.batch_hooks = any(overrides(c, h) for c in callbacks
                               for h in ('on_minibatch_begin', 'on_minibatch_end'))

    def __call__(self, hook, net, logs):
        for c in self.callbacks:
            getattr(c, hook)(net, logs)


class EpochTable(Callback):
    """Prints the epoch table: one row per epoch (the default progress display)."""

    rank_zero_only = True

    def __init__(self, write=print):
        self.write = write

    def on_train_begin(self, net, logs):
        from .training import TABLE_HEADER
        self.write(TABLE_HEADER)

    def on_epoch_end(self, net, logs):
        from .training import format_row
        self.write(format_row(logs))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

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
    """

    def __init__(self, monitor='valid_loss', patience=10, mode='min', min_delta=0.0,
                 restore_best=True):
        if mode not in ('min', 'max'):
            raise ConfigError(f"EarlyStopping: mode must be 'min' or 'max'; received {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f'EarlyStopping: patience must be a positive integer; '
                              f'received {patience!r}')
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore_best = float(min_delta), restore_best
        self.best, self.best_epoch, self.best_params, self.wait = None, None, None, 0

    def _better(self, value):
        if self.best is None:
            return True
        if self.mode == 'min':
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, net, logs):
        value = logs.get(self.monitor)
        if value is None:
            if logs.get('phase') == 'main':
                raise ConfigError(f'EarlyStopping: the epoch row has no {self.monitor!r}; '
                                  f'available: {sorted(k for k, v in logs.items() if v is not None)}')
            return
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, logs['epoch'], 0
            if self.restore_best:
                self.best_params = net.get_params()
            return
        self.wait += 1
        if self.wait >= self.patience:
            if self.restore_best:
                net.set_params(self.best_params)
            raise StopTraining(f'{self.monitor} has not improved for {self.patience} epochs '
                               f'(best {self.best:.4g} in epoch {self.best_epoch})')


class HistoryLogger(Callback):
    """Write the history to ``path`` after every epoch: CSV or JSON (by extension
    or ``format``), atomically, so the file is always complete."""

    rank_zero_only = True

    def __init__(self, path, format=None):
        self.path = os.fspath(path)
        self.format = format or ('json' if self.path.endswith('.json') else 'csv')
        if self.format not in ('csv', 'json'):
            raise ConfigError(f"HistoryLogger: format must be 'csv' or 'json'; "
                              f'received {self.format!r}')
        self.rows = []

    def on_train_begin(self, net, logs):
        self.rows = []

    def on_epoch_end(self, net, logs):
        self.rows.append({k: v for k, v in logs.items() if _is_plain(v)})
        atomic_write_text(self.path, self._text())

    def _text(self):
        if self.format == 'json':
            return json.dumps(self.rows, indent=1)
        import io as _io
        out = _io.StringIO()
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

    def on_epoch_end(self, net, logs):
        if self.condition(logs):
            raise StopTraining(self.message)
