"""A user's ready ``DataLoader`` as a set.

A ``DataLoader`` over a **map-style** dataset is taken apart
(:func:`unpack`): its dataset, ``collate_fn``, ``num_workers``,
``worker_init_fn``, ``pin_memory``, ``timeout``, ``prefetch_factor`` and
``multiprocessing_context`` are kept, while its sampler, ``batch_size``,
``shuffle``, ``drop_last`` and ``generator`` give way to the net's (the
net's batch size, the training order drawn from the net's ``rng``, each
rank's block of every global batch) and its workers live from pass to pass.
It is then read as a dataset is (:mod:`pydnn2.preprocess.loader`), its
``collate_fn`` seeing each batch's raw items.

A ``DataLoader`` over an **IterableDataset** is read as it is
(:class:`LoaderStream`): its own batches, in its own order, from its own
workers; under torchrun each rank's loader is its rank's share. Each pass
reads a copy whose ``generator`` is seeded from the epoch (so its workers'
seeds, and a dataset's draws from them, repeat on a resume, which drops the
batches already done); read in this process, its draws come from generators
of its own, seeded likewise, never from the training's.
"""

import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import DataError
from . import workers as pool
from .iterable import agree_on_batch
from .loader import ItemSpec, LoaderOptions, _seed_all, split_batch
from .sources import Batches, BatchSource

_DEFAULT_COLLATES = (torch.utils.data.default_collate, torch.utils.data.default_convert)


def unpack(loader, persistent=True):
    """``(dataset, collate_fn or None, LoaderOptions)`` of a map-style ``DataLoader``: what
    is kept of it (torch's own default collation is left to pydnn2's)."""
    collate = None if loader.collate_fn in _DEFAULT_COLLATES else loader.collate_fn
    options = LoaderOptions(loader.num_workers, loader.prefetch_factor or 2, loader.pin_memory,
                            loader.timeout, loader.worker_init_fn,
                            loader.multiprocessing_context, persistent)
    return loader.dataset, collate, options


def is_iterable(loader):
    """Whether ``loader`` reads an ``IterableDataset`` (then it is read as it is)."""
    return isinstance(loader.dataset, torch.utils.data.IterableDataset)


def _copy(loader, seed):
    """``loader`` again, with a generator seeded from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    extra = ({'prefetch_factor': loader.prefetch_factor,
              'multiprocessing_context': loader.multiprocessing_context}
             if loader.num_workers else {})
    return DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last,
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, timeout=loader.timeout,
                      worker_init_fn=loader.worker_init_fn, generator=generator,
                      in_order=loader.in_order, **extra)


class _Draws:
    """Torch's CPU, numpy's and Python's global generators as a stream read in this
    process sees them, kept apart from this process's own: ``with draws:`` swaps."""

    def __init__(self, seed):
        with pool.given_back():
            _seed_all(seed)
            self._states = self._current()
        self._saved = None

    @staticmethod
    def _current():
        return torch.random.get_rng_state(), np.random.get_state(), random.getstate()

    @staticmethod
    def _set(states):
        torch.random.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])

    def __enter__(self):
        self._saved = self._current()
        self._set(self._states)

    def __exit__(self, *exc):
        self._states = self._current()
        self._set(self._saved)


def _clean(exc):
    """The user's error without DataLoader's wrapper: its last line when it is one."""
    text = str(exc).strip()
    if 'Original Traceback' in text:
        return text.splitlines()[-1]
    return f'{type(exc).__name__}: {text}'


class LoaderStream(BatchSource):
    """An iterable ``DataLoader``'s own batches, checked (see the module).

    Parameters
    ----------
    loader : torch.utils.data.DataLoader
        Over an ``IterableDataset``; its batches ``(x, y)`` or ``({channel: x}, y)``.
    spec : ItemSpec
        What every row must look like (from the first batch).
    channel : str
        The channel of a batch's ``x`` when it is not a dict.
    name : str
        How errors name the set.
    serve : callable, optional
        ``serve(x) -> x`` on the device: the standardisation.
    """

    def __init__(self, loader, spec, channel, name, serve=None):
        self.loader, self.spec, self.channel, self.name = loader, spec, channel, name
        self.serve, self.broken = serve, False

    @property
    def num_rows(self):
        """None: known only once read."""
        return None

    def close(self):
        """Nothing to let go: a pass's workers end with it."""

    def batches(self, plan):
        """One pass over the loader, its first ``plan.start`` batches dropped; under
        torchrun in training the ranks agree on every batch."""
        seed = (int(torch.randint(2 ** 62, (1,), generator=plan.order))
                if plan.order is not None else 0)
        return Batches(self._served(plan, seed), None, plan.start)

    def _served(self, plan, seed):
        draws = _Draws(seed)
        with draws:
            iterator = iter(_copy(self.loader, seed))
        with pool.watching(iterator, self.name, self):
            yield from self._batches(iterator, draws, plan)

    def _batches(self, iterator, draws, plan):
        agree = plan.whole_batches and plan.shard.world > 1
        step = 0
        while True:
            with draws:
                batch, failure = self._read(iterator, step + 1, plan.num_classes)
            if agree:
                agree_on_batch(self.name, step, batch is not None, failure)
            elif failure is not None:
                raise failure
            if batch is None:
                return
            step += 1
            if step <= plan.start:                  # a resumed epoch's batches done
                continue
            x, y = batch
            x = {k: v.to(plan.device, non_blocking=True) for k, v in x.items()}
            yield (self.serve(x) if self.serve is not None else x), y.to(plan.device,
                                                                          non_blocking=True)

    def _read(self, iterator, step, num_classes):
        """``(checked batch or None at the end, None)`` or ``(None, the DataError)``."""
        where = f'{self.name}, batch {step}'
        try:
            batch = next(iterator)
        except StopIteration:
            return None, None
        except RuntimeError as exc:
            lost = pool.lost_worker(exc, self.name, step)
            if lost is not None:
                return None, lost
            return None, DataError(f'{where}: the DataLoader raised {_clean(exc)}')
        except Exception as exc:  # noqa: BLE001 - the user's error, named with its batch
            return None, DataError(f'{where}: the DataLoader raised {_clean(exc)}')
        try:
            x, y = split_batch(batch, self.channel, where)
            self.spec.check_batch(x, y, where, None, num_classes)
        except DataError as exc:
            return None, exc
        return (x, y), None


def first_batch(loader, channel, name):
    """The :class:`ItemSpec` of an iterable ``DataLoader``'s rows, from its first batch
    (read as the first pass in order reads it); an empty loader is a DataError."""
    draws = _Draws(0)
    with draws:
        iterator = iter(_copy(loader, 0))
        try:
            batch = next(iterator)
        except StopIteration:
            raise DataError(f'{name} is empty; it needs at least one batch') from None
        except Exception as exc:  # noqa: BLE001 - the user's error, named with its batch
            raise DataError(f'{name}, batch 1: the DataLoader raised {_clean(exc)}') from None
        finally:
            del iterator
    return ItemSpec.of_batch(batch, channel, f'{name}, batch 1')
