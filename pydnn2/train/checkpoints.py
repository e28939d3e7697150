"""Checkpoints: everything training needs to continue exactly where it stopped.

A checkpoint is a pydnn2 file (see :mod:`pydnn2.files`) of kind
``'checkpoint'``: the net (calls, weights, preprocessor statistics) and the
session's state (:meth:`~pydnn2.train.session.Session.state_dict`: the
optimizer, the learning rule and annealer, every random generator, the
epoch and phase, the keepers of the best weights, the history and every
callback's state). A checkpoint taken mid-epoch (after Ctrl-C) also records
the epoch's starting generators and how many batches were done, so resuming
rebuilds the same epoch and skips those batches.

Files are named ``<name>_checkpoint_<epochs done>.pt`` (periodic) and
``<name>_checkpoint_<epochs done>_interrupted.pt`` (Ctrl-C).
"""

import glob
import os
import re
import warnings

from .. import files
from ..errors import ConfigError, FileFormatError

_NAME = re.compile(r'_checkpoint_(\d+)(_interrupted)?\.pt$')


def file_name(net, epochs_done, interrupted=False):
    """``<output_dir>/<name>_checkpoint_<epochs_done>[_interrupted].pt``."""
    suffix = '_interrupted' if interrupted else ''
    return os.path.join(net.output_dir or '.',
                        f'{net.name}_checkpoint_{epochs_done:04d}{suffix}{files.EXTENSION}')


def _order(path):
    match = _NAME.search(path)
    return (int(match.group(1)), bool(match.group(2))) if match else (-1, False)


def list_checkpoints(net):
    """This net's checkpoint files in ``output_dir``, oldest first."""
    pattern = os.path.join(glob.escape(net.output_dir or '.'),
                           glob.escape(net.name) + '_checkpoint_*' + files.EXTENSION)
    return sorted((p for p in glob.glob(pattern) if _NAME.search(p)), key=_order)


def newest(net):
    """The newest intact checkpoint of this net, or a clear error if there is none.

    A damaged newer one (checksum mismatch, truncated) is passed over with a
    warning naming it and the problem.
    """
    found = list_checkpoints(net)
    if not found:
        raise FileFormatError(f'resume=True found no checkpoint named {net.name}_checkpoint_*'
                              f'{files.EXTENSION} in {os.path.abspath(net.output_dir or ".")!r}')
    for path in reversed(found):
        try:
            files.read_file(path, 'checkpoint')
        except FileFormatError as exc:
            warnings.warn(f'resume=True passes over a damaged checkpoint: {exc}',
                          UserWarning, stacklevel=2)
            continue
        return path
    raise FileFormatError(f'resume=True found no intact checkpoint of {net.name!r} in '
                          f'{os.path.abspath(net.output_dir or ".")!r}: all {len(found)} are '
                          'damaged (see the warnings)')


def prune(net, keep):
    """Delete all but the newest ``keep`` checkpoints of this net."""
    for path in list_checkpoints(net)[:-keep] if keep else []:
        try:
            os.remove(path)
        except OSError:
            pass


def capture(session, unfinished=None):
    """The checkpoint dict of a training session (``unfinished``: an
    :class:`~pydnn2.train.session.EpochState` when taken mid-epoch)."""
    return {**files.header('checkpoint'), 'net': files.net_state(session.net),
            'session': session.state_dict(),
            'epoch_state': None if unfinished is None else unfinished.as_dict()}


def write(session, unfinished=None):
    """Write a checkpoint atomically, prune old ones; returns its path."""
    path = file_name(session.net, session.epoch, interrupted=unfinished is not None)
    files.atomic_save(capture(session, unfinished), path)
    prune(session.net, session.config.keep_checkpoints)
    return path


def restore(session, path):
    """Load checkpoint ``path`` into a session built for the same net and rule;
    returns the unfinished epoch's state (a dict) or None."""
    state = files.read_file(path, 'checkpoint')
    net, rule = session.net, session.rule
    if 'session' not in state:
        raise FileFormatError(f'{path!r} is a checkpoint of an older pydnn2 layout; it can be '
                              'loaded with load_checkpoint but not resumed')
    if state['net']['calls'] != files.plain_tree(net.calls):
        raise ConfigError(f'{path!r} was written by a different net (its builder calls '
                          'differ); build the same net to resume, or use load_checkpoint')
    saved_rule = state['session']['rule']['class']
    if saved_rule != type(rule).__name__:
        raise ConfigError(f'{path!r} was trained with {saved_rule}; resume it with the same '
                          f'learning rule, not {type(rule).__name__}')
    try:
        net.module.load_state_dict(state['net']['weights'])
        session.load_state_dict(state['session'])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise FileFormatError(f'{path!r} could not be restored: {type(exc).__name__}: {exc}'
                              ) from None
    return state['epoch_state']
