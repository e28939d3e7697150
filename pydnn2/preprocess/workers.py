"""DataLoader workers as the dataset sources use them: failures sent back as values,
this process's random generators given back, loaders kept alive across passes, and
a worker the system kills reported as a :class:`~pydnn2.errors.DataError`.

**Failures travel as values.** A reader (the map-style
:class:`~pydnn2.preprocess.loader.LoaderSource`'s or a stream's) catches what
goes wrong with an item or a batch and sends a :class:`Failure` back in its
place; this process raises it as a ``DataError`` with the reader's message
alone (the dataset, the item or batch, what was expected and what came),
not wrapped in ``DataLoader``'s "Caught ... in DataLoader worker process"
text and the worker's traceback.

**A worker killed by the system** (out of memory, a SIGKILL) surfaces in one
of two places: ``DataLoader`` notices it while this process waits for a
batch (a ``RuntimeError`` that :func:`lost_worker` turns into a
``DataError`` naming the dataset and the batch), or torch's SIGCHLD handler
raises the moment the signal arrives, wherever this process is (training a
batch, say). :func:`watch` wraps that handler once, so that the death of a
worker reading one of our datasets raises a ``DataError`` naming the dataset
and the worker there too; other ``DataLoader``\\ s' workers keep torch's
behaviour.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
import weakref

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import DataError


class Failure:
    """What a reader sends instead of a batch when an item or a batch failed: the
    message to raise, as a :class:`~pydnn2.errors.DataError`, in this process."""

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return f'Failure({self.message!r})'


def raise_failure(batch):
    """Raise the DataError a :class:`Failure` carries; return anything else as it is."""
    if isinstance(batch, Failure):
        raise DataError(batch.message) from None
    return batch


def passthrough(batch):
    """The collate function of readers that make their batches themselves."""
    return batch


@contextlib.contextmanager
def given_back():
    """Around code that reseeds the global generators: in this process (not a
    DataLoader worker), torch's CPU generator, numpy's and Python's are given back as
    they were afterwards (training's dropout draws go on untouched)."""
    if torch.utils.data.get_worker_info() is not None:
        yield
        return
    saved = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.random.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


def open_loader(dataset, options, workers, pin, batch_sampler=None, persistent=False):
    """A ``DataLoader`` over a reader that makes its batches itself.

    Its ``generator`` is its own, so creating an iterator never draws from torch's
    global generator (which the training's dropout draws from: a resumed run would
    otherwise draw once more than an unbroken one)."""
    extra = {'prefetch_factor': options.prefetch_factor,
             'multiprocessing_context': options.multiprocessing_context,
             'persistent_workers': persistent} if workers else {}
    if batch_sampler is not None:
        extra['batch_sampler'] = batch_sampler
    else:
        extra['batch_size'] = None
    return DataLoader(dataset, num_workers=workers, collate_fn=passthrough, pin_memory=pin,
                      timeout=options.timeout, worker_init_fn=options.worker_init_fn,
                      generator=torch.Generator(), **extra)


_KILLED = re.compile(r'DataLoader worker \(pid\(?s?\)? ?([\d, ]+)\)')
_WATCHED: dict[int, tuple] = {}     # worker pid -> (dataset name, weak reference to its source)
_LOCK = threading.Lock()


def lost_worker(exc, name, step):
    """The DataError for ``DataLoader``'s ``RuntimeError`` about a worker that ended while
    batch ``step`` of dataset ``name`` was read (None when ``exc`` is about anything
    else)."""
    match = _KILLED.search(str(exc))
    if match is None and 'DataLoader timed out' not in str(exc):
        return None
    what = (f'a DataLoader worker (pid {match.group(1).strip()}) ended unexpectedly'
            if match else 'no DataLoader worker answered within the timeout')
    return DataError(f'{name}, batch {step}: {what} while reading it ({exc}); the system '
                     'may have killed it (out of memory?). Nothing was trained on the batch')


@contextlib.contextmanager
def watching(iterator, name, source=None, kept=False):
    """:func:`watch` the workers of ``iterator`` for the ``with`` block; then forget them,
    unless the loader is ``kept`` (its workers live on until :func:`forget`). A pass
    left part-way (an error, a stop, a generator closed) has its workers ended at once
    (:func:`abandon`)."""
    watch(iterator, name, source)
    finished = False
    try:
        yield iterator
        finished = True
    finally:
        if not kept:
            forget(iterator)
            if not finished:
                abandon(iterator)


def release(iterator):
    """Let a kept loader's workers go at once: forgotten (their end is no error), then
    :func:`abandon`\\ ed."""
    forget(iterator)
    abandon(iterator)


def abandon(iterator):
    """End the workers of a ``DataLoader`` iterator left part-way, at once.

    A worker that has produced what it was asked for ends by itself, but at its
    exit waits until this process has read the batches still in its pipe, which
    nobody will now read: ``DataLoader``'s shutdown then waits 5 seconds per
    worker before it terminates them (seen: 10 s after a bad item with two
    workers, whenever the abandoned iterator happened to be collected). The
    workers are told apart from the ones torch's SIGCHLD handler watches first,
    so their end is no error."""
    workers = getattr(iterator, '_workers', None) or ()
    if not workers or getattr(iterator, '_shutdown', True):
        return
    if any(getattr(p, '_parent_pid', os.getpid()) != os.getpid() for p in workers):
        # a copy inherited by a forked process (a later loader's worker collecting the
        # garbage it was born with): the workers are not its own to end, nor are they
        # for torch's __del__, which would fail to ask ('can only test a child process')
        iterator._shutdown = True
        return
    if getattr(iterator, '_worker_pids_set', False):
        torch.utils.data._utils.signal_handling._remove_worker_pids(id(iterator))
        iterator._worker_pids_set = False
    for process in workers:
        if process.is_alive():
            process.terminate()
    iterator._shutdown_workers()


def watch(iterator, name, source=None):
    """Note the workers of a ``DataLoader`` iterator as reading dataset ``name`` (of
    ``source``, marked ``broken`` should one die), and wrap torch's SIGCHLD handler
    once (from the main thread) so that such a death raises a DataError."""
    workers = getattr(iterator, '_workers', None) or ()     # (torch's, since 1.0)
    with _LOCK:
        for process in workers:
            _WATCHED[process.pid] = (name, weakref.ref(source) if source is not None else None)
    if workers and threading.current_thread() is threading.main_thread():
        _wrap_sigchld()


def _wrap_sigchld():
    """Install :func:`_on_sigchld` over the handler torch installed (once)."""
    current = signal.getsignal(signal.SIGCHLD)
    if getattr(current, 'pydnn2', False) or not callable(current):
        return

    def handler(signum, frame):
        try:
            current(signum, frame)
        except RuntimeError as exc:
            raise _on_death(exc) from None
    handler.pydnn2 = True
    signal.signal(signal.SIGCHLD, handler)


def _on_death(exc):
    """The error to raise for torch's report ``exc`` of a dead worker: a DataError when
    the worker read one of our datasets (its source marked broken), else ``exc``."""
    match = _KILLED.search(str(exc))
    pids = [int(p) for p in re.findall(r'\d+', match.group(1))] if match else []
    with _LOCK:
        known = [(pid, _WATCHED.pop(pid)) for pid in pids if pid in _WATCHED]
    if not known:
        return exc
    pid, (name, ref) = known[0]
    source = ref() if ref is not None else None
    if source is not None:
        source.broken = True
    return DataError(f'{name}: a DataLoader worker (pid {pid}) reading it died ({exc}); the '
                     'system may have killed it (out of memory?)')


def forget(iterator):
    """Stop watching the workers of ``iterator`` (shut down or replaced)."""
    with _LOCK:
        for process in getattr(iterator, '_workers', None) or ():
            _WATCHED.pop(process.pid, None)
