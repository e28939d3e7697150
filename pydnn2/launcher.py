"""Starting the ranks from Python: :func:`launch` and ``net.train(..., devices=N)``.

``torchrun`` starts the processes of a data-parallel run from the shell. In a
notebook or a plain Python session :func:`launch` does the same on this
machine: it starts ``nprocs`` processes, gives each torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR=127.0.0.1`` and a
free ``MASTER_PORT``), runs ``function(*args)`` in each, and returns rank
0's result (as Lightning's ``ddp_notebook`` and accelerate's
``notebook_launcher`` do). ``net.train(..., devices=N)`` is
:func:`train_in_processes`: it launches ``N`` ranks that train the net and
brings rank 0's weights and history back into this process's net.

The limits, as for any such launcher:

- **spawn** (the default for a function that can be imported) starts fresh
  interpreters: ``function`` and its arguments are pickled, so the function
  must be importable by name (defined in a module, not in a notebook cell or
  under ``if __name__ == '__main__'`` of an interactive session), and a script
  that calls :func:`launch` must do so under ``if __name__ == '__main__':``.
- **fork** (the default for a function defined in an interactive
  ``__main__``, such as a notebook cell, and what ``devices=N`` uses) copies
  this process, so the function and the net need not be picklable; it
  exists on Linux and macOS only, and CUDA cannot be used in a forked child
  once this process has started it. ``devices=N`` therefore trains CPU nets;
  for GPUs start the script with ``torchrun --nproc_per_node=N``.
- One launch at a time, and not from inside a process group (under torchrun).
"""

import os
import pickle
import socket
import sys

import torch
import torch.multiprocessing as mp

from . import distributed
from .errors import ConfigError
from .train.history import History


def free_port():
    """A TCP port on 127.0.0.1 that is free now (for ``MASTER_PORT``)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _interactive(function):
    """Whether ``function`` lives in a ``__main__`` that cannot be imported (a notebook,
    the interactive interpreter): spawn could not find it again."""
    main = sys.modules.get('__main__')
    return getattr(function, '__module__', None) == '__main__' and not getattr(
        main, '__file__', None)


def start_method_for(function, start_method=None):
    """``start_method`` checked, or the default for ``function``: fork for one defined
    interactively, spawn otherwise."""
    method = start_method or ('fork' if _interactive(function) else 'spawn')
    if method not in mp.get_all_start_methods():
        raise ConfigError(f'start_method must be one of {mp.get_all_start_methods()} on this '
                          f'system; received {method!r}')
    if method == 'fork' and torch.cuda.is_initialized():
        raise ConfigError('a forked process cannot use CUDA once this process has started '
                          'it; start the script with torchrun --nproc_per_node=N, or launch '
                          "an importable function with start_method='spawn'")
    return method


def _rank(index, function, args, nprocs, port, results):
    """One launched process: torchrun's environment, ``function(*args)``, and rank 0's
    result into ``results``."""
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(nprocs),
                      LOCAL_WORLD_SIZE=str(nprocs), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    if 'OMP_NUM_THREADS' not in os.environ:        # (torchrun's choice: share the cores)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nprocs))
    finished = False
    try:
        result = function(*args)
        finished = True
    finally:
        distributed.finish(together=finished)       # no waiting for ranks after an error
    if index == 0:      # (bytes: tensors must not travel as shared memory of a process
        results.put(pickle.dumps((result,)))          # that is about to end)


def launch(function, *args, nprocs=2, start_method=None):
    """Run ``function(*args)`` in ``nprocs`` new processes on this machine, as the ranks
    of one ``torch.distributed`` group (what ``torchrun --standalone
    --nproc_per_node=nprocs`` does for a script); returns rank 0's result.

    Inside ``function``, ``net.train(...)`` trains data-parallel exactly as under
    torchrun. An exception in any rank stops them all and is raised here
    (``torch.multiprocessing.ProcessRaisedException``, with the rank's traceback).
    See the module's notes for spawn and fork (``start_method``).

    >>> launch(print, 'hello', nprocs=2)          # doctest: +SKIP
    """
    nprocs = _processes(nprocs)
    if distributed.active() or distributed.environment() is not None:
        raise ConfigError('launch starts the ranks of a new group; this process is already '
                          'one rank of a group (torchrun): call the function directly')
    method = start_method_for(function, start_method)
    context = mp.get_context(method)
    results = context.SimpleQueue()
    processes = mp.start_processes(_rank, (function, args, nprocs, free_port(), results),
                                   nprocs=nprocs, join=False, start_method=method)
    result = None
    while not processes.join(timeout=0.1):
        if result is None and not results.empty():
            result = results.get()
    if result is None and not results.empty():
        result = results.get()
    return pickle.loads(result)[0] if result else None


def _processes(nprocs):
    """``nprocs`` checked: an int of at least 1."""
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ConfigError(f'the number of processes must be an int of at least 1; received '
                          f'{nprocs!r}')
    return nprocs


def _train_rank(net, args, options):
    """One rank of :func:`train_in_processes`: train; rank 0 returns the weights and
    the history."""
    history = net.train(*args, **options)
    if distributed.is_writer():
        return net.get_params(), dict(history)
    return None


def train_in_processes(net, devices, *args, **options):
    """``net.train(*args, **options)`` in ``devices`` forked CPU processes, data-parallel;
    rank 0's weights and history come back into ``net`` (its learning rule, ``rng``
    and preprocessor stay as they were in this process). Returns the history."""
    devices = _processes(devices)
    if torch.device(net.device).type != 'cpu':
        raise ConfigError(f'devices={devices} trains in forked processes, which cannot use '
                          f'{net.device}; start the script with torchrun '
                          f'--nproc_per_node={devices} for one process per GPU')
    weights, history = launch(_train_rank, net, args, options, nprocs=devices,
                              start_method=start_method_for(_train_rank, 'fork'))
    net.set_params(weights)
    net.history = History(history)
    return net.history
