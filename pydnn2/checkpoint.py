"""Checkpoints: everything training needs to continue exactly where it stopped.

A checkpoint is a pydnn2 file (see :mod:`pydnn2.io`) of kind
``'checkpoint'``: the net (calls, weights, preprocessor statistics), the
optimizer state, the learning rule and annealer state, every random
generator (torch, the shuffle, the net's numpy rng, the preprocessor's
augmentation schedule), the epoch and phase, the best validation weights and
the history. A checkpoint taken mid-epoch (after Ctrl-C) also records the
epoch's starting generators and how many batches were done, so resuming
rebuilds the same epoch and skips those batches.

Files are named ``<name>_checkpoint_<epochs done>.pt`` (periodic) and
``<name>_checkpoint_<epochs done>_interrupted.pt`` (Ctrl-C).
"""

import glob
import os
import re

import numpy as np
import torch

from . import io
from .errors import ConfigError, FileFormatError

_NAME = re.compile(r'_checkpoint_(\d+)(_interrupted)?\.pt$')


def numpy_rng_state(rng):
    """The state of a numpy RandomState/Generator as plain data (None for an int seed)."""
    if isinstance(rng, np.random.RandomState):
        name, keys, pos, has_gauss, cached = rng.get_state()
        return {'kind': 'RandomState', 'name': name, 'keys': torch.from_numpy(keys.astype(np.int64)),
                'pos': int(pos), 'has_gauss': int(has_gauss), 'cached': float(cached)}
    if isinstance(rng, np.random.Generator):
        return {'kind': 'Generator', 'state': rng.bit_generator.state}
    return None


def set_numpy_rng_state(rng, state):
    """Restore :func:`numpy_rng_state` into ``rng`` (in place)."""
    if state is None:
        return
    if state['kind'] == 'RandomState':
        rng.set_state((state['name'], state['keys'].numpy().astype(np.uint32), state['pos'],
                       state['has_gauss'], state['cached']))
    else:
        rng.bit_generator.state = state['state']


def file_name(net, epochs_done, interrupted=False):
    """``<output_dir>/<name>_checkpoint_<epochs_done>[_interrupted].pt``."""
    suffix = '_interrupted' if interrupted else ''
    return os.path.join(net.output_dir or '.',
                        f'{net.name}_checkpoint_{epochs_done:04d}{suffix}{io.EXTENSION}')


def _order(path):
    match = _NAME.search(path)
    return (int(match.group(1)), bool(match.group(2))) if match else (-1, False)


def list_checkpoints(net):
    """This net's checkpoint files in ``output_dir``, oldest first."""
    pattern = os.path.join(glob.escape(net.output_dir or '.'),
                           glob.escape(net.name) + '_checkpoint_*' + io.EXTENSION)
    return sorted((p for p in glob.glob(pattern) if _NAME.search(p)), key=_order)


def newest(net):
    """The newest checkpoint of this net, or a clear error if there is none."""
    found = list_checkpoints(net)
    if not found:
        raise FileFormatError(f'resume=True found no checkpoint named {net.name}_checkpoint_*'
                              f'{io.EXTENSION} in {os.path.abspath(net.output_dir or ".")!r}')
    return found[-1]


def prune(net, keep):
    """Delete all but the newest ``keep`` checkpoints of this net."""
    for path in list_checkpoints(net)[:-keep] if keep else []:
        try:
            os.remove(path)
        except OSError:
            pass


def rng_states(session):
    """Every random generator training draws from, as plain data."""
    net = session.net
    state = {'torch': torch.get_rng_state(), 'shuffle': session.shuffle.get_state(),
             'net_rng': numpy_rng_state(net.rng),
             'preprocessor': io._plain_tree(net.preprocessor.get_state())}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(session, state):
    """Restore :func:`rng_states`."""
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    session.shuffle.set_state(state['shuffle'])
    set_numpy_rng_state(session.net.rng, state['net_rng'])
    session.net.preprocessor.set_state(state['preprocessor'])


def capture(session, epoch_state=None):
    """The checkpoint dict of a training session (``epoch_state`` when mid-epoch)."""
    state = io.header('checkpoint')
    state.update({
        'net': io.net_state(session.net),
        'rule': {'class': type(session.rule).__name__, 'state': session.rule.state_dict()},
        'optimizer': session.optimizer.state_dict(),
        'rng': rng_states(session),
        'progress': {'epoch': session.epoch, 'main_done': session.main_done,
                     'best_valid': session.best_valid, 'since_best': session.since_best},
        'epoch_state': epoch_state,
        'best_params': session.best_params,
        'history': session.history,
    })
    return state


def write(session, epoch_state=None):
    """Write a checkpoint atomically, prune old ones; returns its path."""
    path = file_name(session.net, session.epoch, interrupted=epoch_state is not None)
    io.atomic_save(capture(session, epoch_state), path)
    prune(session.net, session.keep_checkpoints)
    return path


def restore(session, path):
    """Load checkpoint ``path`` into a session built for the same net and rule."""
    state = io.read_file(path, 'checkpoint')
    net, rule = session.net, session.rule
    if state['net']['calls'] != io._plain_tree(net.calls):
        raise ConfigError(f'{path!r} was written by a different net (its builder calls '
                          'differ); build the same net to resume, or use load_checkpoint')
    if state['rule']['class'] != type(rule).__name__:
        raise ConfigError(f'{path!r} was trained with {state["rule"]["class"]}; resume it '
                          f'with the same learning rule, not {type(rule).__name__}')
    try:
        net.module.load_state_dict(state['net']['weights'])
        rule.load_state_dict(state['rule']['state'])
        session.optimizer.load_state_dict(state['optimizer'])
        set_rng_states(session, state['rng'])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise FileFormatError(f'{path!r} could not be restored: {type(exc).__name__}: {exc}'
                              ) from None
    progress = state['progress']
    session.epoch, session.main_done = progress['epoch'], progress['main_done']
    session.best_valid, session.since_best = progress['best_valid'], progress['since_best']
    session.best_params = state['best_params']
    session.history.clear()
    session.history.update(state['history'])
    return state['epoch_state']


def load_checkpoint(filename, device=None):
    """Return the net stored in a checkpoint, for inspection or prediction."""
    state = io.read_file(filename, 'checkpoint')
    return io.net_from_state(state['net'], device, os.fspath(filename))
