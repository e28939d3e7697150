"""Random generators: seeds drawn from a user's ``rng``, and their states as plain data.

pydnn's functions take ``rng``, a numpy ``RandomState``; pydnn2 also takes a
numpy ``Generator`` or an int seed. :func:`seed_from` turns any of them into
one 31-bit seed for a torch or numpy generator of pydnn2's own.
:func:`numpy_state` and :func:`set_numpy_state` are the one codec of numpy
generator states that checkpoints and preprocessors use (plain data and
tensors, which a safe file can hold). :func:`forked` scopes torch's global
generators: what is drawn (or seeded) inside leaves the caller's state as it
was, which is how ``train`` runs dropout from the net's ``rng`` without
reseeding the user's global generator.

>>> import numpy as np
>>> seed_from(7), seed_from(np.random.RandomState(0)) == seed_from(np.random.RandomState(0))
(7, True)
>>> rng = np.random.RandomState(3)
>>> state = numpy_state(rng)
>>> first = rng.rand()
>>> set_numpy_state(rng, state)
>>> rng.rand() == first
True
"""

import random

import numpy as np
import torch

from . import checks
from .errors import ConfigError

SEED_LIMIT = 2 ** 31 - 1


def seed_from(rng, default=None):
    """A seed in ``[0, 2**31 - 1)`` drawn from ``rng`` (one draw), or ``rng`` itself
    if it is an int; ``default`` stands for ``rng=None`` where None is allowed."""
    if rng is None and default is not None:
        return int(default)
    if checks.is_integer(rng):
        return int(rng) % SEED_LIMIT
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(0, SEED_LIMIT))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, SEED_LIMIT))
    allowed = 'a numpy.random.RandomState, a numpy.random.Generator or an int seed'
    raise ConfigError(f'rng must be {allowed}{" or None" if default is not None else ""}; '
                      f'received {type(rng).__name__}')


def numpy_state(rng):
    """The state of a numpy ``RandomState`` or ``Generator`` as plain data
    (None for anything else, such as an int seed, which has no state)."""
    if isinstance(rng, np.random.RandomState):
        state = rng.get_state(legacy=False)
        return {'kind': 'RandomState',
                'key': torch.from_numpy(state['state']['key'].astype(np.int64)),
                'pos': int(state['state']['pos']), 'has_gauss': int(state['has_gauss']),
                'gauss': float(state['gauss'])}
    if isinstance(rng, np.random.Generator):
        return {'kind': 'Generator', 'state': rng.bit_generator.state}
    return None


def set_numpy_state(rng, state):
    """Restore :func:`numpy_state`'s ``state`` into ``rng``, in place."""
    if state is None:
        return
    if state.get('kind', 'RandomState') == 'RandomState':   # older files name no kind
        rng.set_state({'bit_generator': 'MT19937',
                       'state': {'key': state['key'].numpy().astype(np.uint32),
                                 'pos': state['pos']},
                       'has_gauss': state['has_gauss'], 'gauss': state['gauss']})
    else:
        rng.bit_generator.state = state['state']


def torch_states():
    """The global torch generators (CPU, and every CUDA device there is)."""
    states = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_torch_states(states):
    """Restore :func:`torch_states`."""
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


def cuda_devices(device='cpu'):
    """The CUDA devices whose global generators work on ``device`` may touch: all of
    them for a CUDA ``device`` or once CUDA has started, else none (so that work
    on the CPU never starts CUDA)."""
    if not torch.cuda.is_available():
        return []
    if torch.device(device).type == 'cuda' or torch.cuda.is_initialized():
        return list(range(torch.cuda.device_count()))
    return []


def forked(device='cpu'):
    """A context in which torch's global generators (the CPU one and those of
    :func:`cuda_devices`) may be seeded and drawn from; on leaving it they are
    back as they were (``torch.random.fork_rng``).

    >>> state = torch.get_rng_state()
    >>> with forked():
    ...     seed_torch(0)
    ...     _ = torch.rand(3)
    >>> torch.equal(state, torch.get_rng_state())
    True
    """
    return torch.random.fork_rng(devices=cuda_devices(device))


def seed_torch(seed, device='cpu'):
    """Seed torch's global CPU generator, and ``device``'s when it is a CUDA device:
    the generators dropout draws from on that device (the other CUDA devices,
    and a CUDA not yet started, are left alone)."""
    torch.random.default_generator.manual_seed(seed)
    device = torch.device(device)
    if device.type == 'cuda':
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _plain(value):
    """Numpy values as tensors or Python scalars, so that a safe file can hold them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return value


def snapshot(net=None, shuffle=None, torch_globals=True, everything=False):
    """The state of the random generators training draws from, as plain data.

    Parameters
    ----------
    net : pydnn2.NN, optional
        Its numpy ``rng`` (``'net_rng'``) and its preprocessor's random state
        (``'preprocessor'``: the augmentation schedule,
        :meth:`~pydnn2.preprocess.base.Preprocessor.random_state`); with
        ``everything``, its initialisation generator too (``'init'``).
    shuffle : torch.Generator, optional
        The generator of the epochs' order (``'shuffle'``).
    torch_globals : bool
        torch's global CPU and CUDA generators (``'torch'``, ``'cuda'``), which
        dropout draws from.
    everything : bool
        Also numpy's and Python's global generators (``'numpy'``, ``'python'``):
        what a sweep that must leave no trace puts back.

    Returns
    -------
    dict
        The checkpoint's ``rng`` entry (with the defaults), for :func:`restore`.

    >>> state = snapshot()
    >>> first = torch.rand(1)
    >>> restore(state)
    >>> torch.equal(torch.rand(1), first)
    True
    """
    state = torch_states() if torch_globals else {}
    if shuffle is not None:
        state['shuffle'] = shuffle.get_state()
    if net is not None:
        state['net_rng'] = numpy_state(net.rng)
        state['preprocessor'] = _plain(net.preprocessor.random_state())
        if everything:
            state['init'] = net.graph.generator.get_state()
    if everything:
        state['numpy'], state['python'] = np.random.get_state(), random.getstate()
    return state


def restore(state, net=None, shuffle=None, torch_globals=True):
    """Put back what :func:`snapshot` took (the entries ``state`` holds), into ``net``
    and ``shuffle`` where given (torch's global generators unless ``torch_globals`` is
    False: data-parallel ranks restore their own)."""
    if torch_globals and 'torch' in state:
        set_torch_states(state)
    if shuffle is not None:
        shuffle.set_state(state['shuffle'])
    if net is not None:
        set_numpy_state(net.rng, state['net_rng'])
        net.preprocessor.set_random_state(state['preprocessor'])
        if 'init' in state:
            net.graph.generator.set_state(state['init'])
    if 'numpy' in state:
        np.random.set_state(state['numpy'])
        random.setstate(state['python'])
