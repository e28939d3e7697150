"""Checkpoints: everything training needs to continue exactly where it stopped.

A checkpoint is a pydnn2 file (see :mod:`pydnn2.files`) of kind
``'checkpoint'``: the net (calls, weights, preprocessor statistics) and the
session's state (:meth:`~pydnn2.train.session.Session.state_dict`: the
optimizer, the learning rule and annealer, every random generator, the
epoch and phase, the keepers of the best weights, the history and every
callback's state). A checkpoint taken mid-epoch (after Ctrl-C) also records
the epoch's starting generators and how many batches were done, so resuming
rebuilds the same epoch and skips those batches.

:class:`ModelCheckpoint` writes the periodic ones (``train(checkpoint_every=n,
keep_checkpoints=k)`` adds one); the trainer writes the interrupted one
itself. Files are named ``<name>_checkpoint_<epochs done>.pt`` (periodic) and
``<name>_checkpoint_<epochs done>_interrupted.pt`` (Ctrl-C, SIGTERM). Each
carries its run's record (``'run'``: id and start, see
:mod:`pydnn2.train.runs`) and what a resume compares (``'checks'``); pruning
and ``resume=True`` only ever consider the checkpoints of one run.
"""

import glob
import os
import re
import warnings
from stat import S_ISREG

import torch

from .. import checks, files
from ..errors import ConfigError, FileFormatError
from .callbacks import Callback

_NAME = re.compile(r'_checkpoint_(\d+)(_interrupted)?\.pt$')


def file_name(net, epochs_done, interrupted=False):
    """``<output_dir>/<name>_checkpoint_<epochs_done>[_interrupted].pt``."""
    suffix = '_interrupted' if interrupted else ''
    return os.path.join(net.output_dir or '.',
                        f'{net.name}_checkpoint_{epochs_done:04d}{suffix}{files.EXTENSION}')


def _order(path):
    match = _NAME.search(path)
    return (int(match.group(1)), bool(match.group(2))) if match else (-1, False)


def is_checkpoint(path):
    """Whether ``path`` is named like a checkpoint."""
    return bool(_NAME.search(path))


def is_checkpoint_of(net, name):
    """Whether the file name ``name`` (no folder) is one of ``net``'s checkpoint names."""
    return re.fullmatch(re.escape(net.name) + _NAME.pattern, name) is not None


def named_like_checkpoints(net):
    """Everything in ``output_dir`` named like one of this net's checkpoints (files or
    not), oldest first; nothing is opened."""
    pattern = os.path.join(glob.escape(net.output_dir or '.'),
                           glob.escape(net.name) + '_checkpoint_*' + files.EXTENSION)
    return sorted((p for p in glob.glob(pattern) if _NAME.search(p)), key=_order)


def list_checkpoints(net):
    """This net's checkpoint files in ``output_dir``, oldest first: regular files only (a
    folder or a named pipe of such a name is never opened)."""
    return [p for p in named_like_checkpoints(net) if os.path.isfile(p)]


_RUNS = {}       # (path, mtime, size) -> run record: a file is read once for its owner


def run_of(path):
    """The run record (``{'id', 'started'}``) a pydnn2 file carries: ``{}`` for one written
    before runs had ids, None for one that cannot be read. Only the record is read
    (the tensors stay on disk)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None                     # (opening a named pipe would block)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _RUNS:
        try:
            state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
            record = state.get('run') if isinstance(state, dict) else None
            _RUNS[key] = record if isinstance(record, dict) else {}
        except Exception:  # noqa: BLE001 - an unreadable file has no known owner
            _RUNS[key] = None
    return _RUNS[key]


def _one_run(net, found):
    """The checkpoints of the one run ``resume=True`` continues (unreadable ones stay,
    to be passed over); refuses when several runs left checkpoints."""
    owners = {path: run_of(path) for path in found}
    ids = {record.get('id') for record in owners.values() if record is not None}
    if len(ids - {None}) == 1:
        ids -= {None}             # checkpoints without an id predate the run that has one
    if len(ids) > 1:
        newest_of = {owners[p].get('id'): p for p in found if owners[p] is not None}
        raise ConfigError(f'resume=True found checkpoints of {len(ids)} runs of '
                          f'{net.name!r}: ' + ', '.join(
                              f'run {str(i)[:8]} up to {os.path.basename(p)}'
                              for i, p in newest_of.items())
                          + '; choose one with resume=<path of a checkpoint>')
    return [p for p in found if owners[p] is None or owners[p].get('id') in ids]


def newest_state(net):
    """``(path, contents)`` of the newest intact checkpoint of this net's run, or a clear
    error if there is none.

    A damaged newer one (checksum mismatch, truncated) is passed over with a
    warning naming it and the problem.
    """
    found = list_checkpoints(net)
    if not found:
        raise FileFormatError(f'resume=True found no checkpoint named {net.name}_checkpoint_*'
                              f'{files.EXTENSION} in {os.path.abspath(net.output_dir or ".")!r}')
    for path in reversed(_one_run(net, found)):
        try:
            state = files.read_file(path, 'checkpoint')
        except FileFormatError as exc:
            warnings.warn(f'resume=True passes over a damaged checkpoint: {exc}',
                          UserWarning, stacklevel=2)
            continue
        return path, state
    raise FileFormatError(f'resume=True found no intact checkpoint of {net.name!r} in '
                          f'{os.path.abspath(net.output_dir or ".")!r}: all {len(found)} are '
                          'damaged (see the warnings)')


def prune(net, keep, run_id):
    """Delete all but the newest ``keep`` checkpoints of run ``run_id`` (never another
    run's)."""
    own = [p for p in list_checkpoints(net) if (run_of(p) or {}).get('id') == run_id]
    for path in own[:-keep] if keep else []:
        try:
            os.remove(path)
        except OSError:
            pass


def capture(net, run, state, unfinished=None):
    """The checkpoint dict of a training run: ``net``'s weights, the ``run``'s identity
    and checks, ``state`` (:meth:`pydnn2.train.trainer.Trainer.state_dict`) and
    ``unfinished`` (an :class:`~pydnn2.train.session.EpochState` when taken mid-epoch)."""
    return {**files.header('checkpoint'), 'run': run.record(), 'checks': run.checks,
            'net': files.net_state(net), 'session': state,
            'epoch_state': None if unfinished is None else unfinished.as_dict()}


def write(net, run, state, epoch, keep, unfinished=None):
    """Write the checkpoint of ``epoch`` atomically (see :func:`capture`), prune all but the
    newest ``keep`` of the run; returns its path."""
    path = file_name(net, epoch, interrupted=unfinished is not None)
    files.atomic_save(capture(net, run, state, unfinished), path)
    prune(net, keep, run.id)
    return path


class ModelCheckpoint(Callback):
    """Write a checkpoint every ``every`` epochs, keeping the newest ``keep`` of the run.

    ``train(checkpoint_every=n, keep_checkpoints=k)`` adds one. It writes in the
    :meth:`~pydnn2.train.callbacks.Callback.on_checkpoint` hook, after the
    epoch's annealer and learning rule, through the trainer (rank 0 writes,
    holding every rank's generators). The interrupted checkpoint a signal
    asks for is the trainer's own, written with or without a ModelCheckpoint.
    Needs a net with an ``output_dir`` (not None).

    Parameters
    ----------
    every : int
        Epochs between two checkpoints (counting both phases).
    keep : int
        How many of the run's newest checkpoints stay.
    """

    def __init__(self, every=1, keep=3):
        self.every = checks.integer(every, 'every', 1, where='ModelCheckpoint')
        self.keep = checks.integer(keep, 'keep', 1, where='ModelCheckpoint')

    def on_train_begin(self, net, logs):
        if net.output_dir is None:
            raise ConfigError('ModelCheckpoint needs a folder to write in; received a net '
                              'with output_dir=None (give it an output_dir)')

    def on_checkpoint(self, net, logs):
        if logs['epochs_done'] % self.every == 0:
            self.trainer.write_checkpoint(keep=self.keep)

    def state_dict(self):
        """Nothing of its own: the files are the run's."""
        return {}
