"""A map-style torch ``Dataset`` as a batch source, read through a ``DataLoader``.

:class:`LoaderSource` serves the batches the loop asks for
(:class:`~pydnn2.preprocess.sources.EpochPlan`) from a dataset whose items
are ``(x, y)`` or ``({channel: x, ...}, y)``: the loop's own batch sampler
picks the rows (this rank's block of every global batch, drawn from the
plan's generator), ``DataLoader`` workers read and collate them, and each
batch reaches the device pinned and without blocking.

**Every random draw an item makes follows from the epoch and the item alone.**
Before an item is read, torch's, numpy's and Python's global generators are
seeded from the epoch's seed and the item's index (in a worker, that
worker's generators; in this process they are given back afterwards). So a
dataset that augments at random gives the same item whichever worker or
rank reads it and however the rows are split: a run resumed mid-epoch, a run
on another number of workers and a run on two ranks see the very items an
unbroken single-process run sees.

**Every item is checked where it is read**, against the channels, shapes and
dtypes of the first item (:class:`ItemSpec`), for NaN and infinite values,
and for a class within ``0 .. num_classes - 1``; an item that raises, a worker
the system kills and an empty dataset are :class:`~pydnn2.errors.DataError`\\ s
naming the dataset and the item or batch.
"""

import dataclasses
import os
import random
import weakref
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from . import workers as pool
from .sources import Batches, BatchSource, batch_rows

#: The most DataLoader workers chosen by default.
MAX_WORKERS = 8
#: Seeds of item draws stay below this.
SEED_LIMIT = 2 ** 63 - 1


def default_workers():
    """The machine's cores, at most :data:`MAX_WORKERS`."""
    return min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
               else os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class ItemSpec:
    """What every item of a dataset must look like: ``{channel: (row shape, kind)}``
    with kind ``'float'`` (values, served as float32) or ``'int'`` (tokens, int64)."""

    channels: dict
    dict_items: bool        # items carry a dict of channels (else one tensor)

    @classmethod
    def of(cls, item, channel, where):
        """The spec of a first item ``(x, y)`` or ``({channel: x}, y)``."""
        x, _ = split_item(item, channel, where)
        return cls({name: (tuple(v.shape), _kind(v, f'{where}, channel {name!r}'))
                    for name, v in x.items()}, isinstance(item[0], dict))

    @classmethod
    def of_batch(cls, batch, channel, where):
        """The spec of the rows of a first batch ``(x, y)`` (a ``collate_fn``'s)."""
        x, _ = split_batch(batch, channel, where)
        return cls({name: (tuple(v.shape[1:]), _kind(v, f'{where}, channel {name!r}'))
                    for name, v in x.items()}, isinstance(batch[0], dict))

    def check(self, x, where):
        """Refuse an item ``{channel: tensor}`` of other channels, shapes or dtypes."""
        self._check_channels(x, where, lambda v: tuple(v.shape))

    def check_batch(self, x, y, where, item=None, num_classes=None):
        """Refuse a batch ``({channel: (b, ...)}, y (b,))`` of other channels, row shapes or
        dtypes, with NaN or infinite values, or with a class outside ``0 .. num_classes -
        1``; ``where`` names the batch, ``item(i)`` (when known) the item of its row ``i``."""
        self._check_channels(x, where, lambda v: tuple(v.shape[1:]))
        sizes = {len(v) for v in x.values()} | {len(y)}
        if len(sizes) != 1 or y.dim() != 1:
            raise DataError(f'{where}: expected one class per row (a 1-d y as long as x); '
                            f'received y of shape {tuple(y.shape)} for '
                            f'{sorted(len(v) for v in x.values())} rows')
        name = item or (lambda row: f'{where}, row {row}')
        for channel, v in x.items():
            if self.channels[channel][1] == 'float':
                finite = torch.isfinite(v.reshape(len(v), -1)).all(1)
                if not bool(finite.all()):
                    row = int((~finite).nonzero()[0])
                    raise DataError(f'{name(row)}, channel {channel!r} holds NaN or infinite '
                                    'values; expected finite numbers')
        bad = (y < 0) | (y >= num_classes) if num_classes is not None else y < 0
        if bool(bad.any()):
            row = int(bad.nonzero()[0])
            limit = f'0 .. {num_classes - 1}' if num_classes is not None else '>= 0'
            raise DataError(f'{name(row)} has class {int(y[row])}; expected a class in {limit}')

    def _check_channels(self, x, where, row_shape):
        if set(x) != set(self.channels):
            raise DataError(f'{where} has channels {sorted(x)}; expected '
                            f'{sorted(self.channels)} (as the first item)')
        for name, v in x.items():
            shape, kind = self.channels[name]
            got = _kind(v, f'{where}, channel {name!r}')
            if row_shape(v) != shape or got != kind:
                raise DataError(f'{where}, channel {name!r}: expected {kind} values of shape '
                                f'{shape} (as the first item); received {v.dtype} of shape '
                                f'{row_shape(v)}')


def _kind(v, where):
    if v.dtype.is_floating_point:
        return 'float'
    if v.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        return 'int'
    raise DataError(f'{where}: expected numbers; received dtype {v.dtype}')


def _pair(item, where, what):
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f'{where}: expected {what} (x, y) or ({{channel: x}}, y); received '
                        f'{type(item).__name__}' + (f' of length {len(item)}'
                                                    if isinstance(item, (tuple, list)) else ''))
    return item


def _channels(x, channel):
    x = dict(x) if isinstance(x, dict) else {channel: x}
    return {name: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
            for name, v in x.items()}


def split_item(item, channel, where):
    """An item ``(x, y)`` or ``({channel: x}, y)`` as ``({channel: tensor}, int class)``."""
    x, y = _pair(item, where, 'an item')
    try:
        return _channels(x, channel), (int(y) if isinstance(y, (int, np.integer))
                                        else int(torch.as_tensor(y).item()))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f'{where}: expected array-like inputs and one integer class; '
                        f'{type(exc).__name__}: {exc}') from None


def split_batch(batch, channel, where):
    """A collated batch ``(x, y)`` or ``({channel: x}, y)`` as ``({channel: (b, ...)},
    int64 classes (b,))``."""
    x, y = _pair(batch, where, 'a batch')
    try:
        x, y = _channels(x, channel), torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f'{where}: expected array-like inputs and integer classes; '
                        f'{type(exc).__name__}: {exc}') from None
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise DataError(f'{where}: expected integer classes; received {y.dtype}')
    return x, y.long()


class _Key(list):
    """The indices of one batch, with the seed of the epoch's item draws, the batch's
    number in the pass and the number of classes its items must be below."""

    def __init__(self, indices, seed, step=None, num_classes=None):
        super().__init__(indices)
        self.seed, self.step, self.num_classes = seed, step, num_classes


class _Keys:
    """The batch sampler of a loader kept across passes: each pass's keys."""

    def __init__(self):
        self.keys = []

    def __iter__(self):
        return iter(self.keys)

    def __len__(self):
        return len(self.keys)


def item_seed(epoch_seed, index):
    """The seed of item ``index``'s draws in the epoch of ``epoch_seed``."""
    return (epoch_seed * 1_000_003 + index * 7_919 + 1) % SEED_LIMIT


def _seed_all(seed):
    torch.random.default_generator.manual_seed(seed)     # (torch.manual_seed: 1 ms, lazily
    np.random.seed(seed % 2 ** 32)                       # seeding devices with a traceback)
    random.seed(seed)


class _Reader(torch.utils.data.Dataset):
    """The user's dataset, read a batch of items at a time: each item seeded and read,
    then collated (by ``collate``, the user's ``collate_fn``, if given: it sees the raw
    items) and the batch checked; a :class:`~pydnn2.preprocess.workers.Failure` in its
    place when anything failed."""

    def __init__(self, dataset, spec, channel, name, collate=None):
        self.dataset, self.spec, self.channel = dataset, spec, channel
        self.name, self.collate = name, collate

    def __len__(self):
        return len(self.dataset)

    def __getitems__(self, key):
        try:
            with pool.given_back():
                items = [self._item(int(i), key.seed) for i in key]
                return self._batch(items, key)
        except DataError as exc:
            return pool.Failure(str(exc))

    def _item(self, index, seed):
        where = f'{self.name}, item {index}'
        if seed is not None:                  # None: items that draw nothing
            _seed_all(item_seed(seed, index))
        try:
            item = self.dataset[index]
        except Exception as exc:  # the user's error, named with its item
            raise DataError(f'{where} raised {type(exc).__name__}: {exc}') from exc
        if self.collate is not None:
            return item
        x, y = split_item(item, self.channel, where)
        self.spec.check(x, where)
        return x, y

    def _batch(self, items, key):
        where = f'{self.name}, batch {key.step}' if key.step is not None else self.name
        if self.collate is None:
            x = {name: torch.stack([x[name] for x, _ in items]) for name in items[0][0]}
            y = torch.tensor([y for _, y in items], dtype=torch.long)
        else:
            x, y = collated(self.collate, items, self.channel, where,
                            item_seed(key.seed, -1 - key[0]) if key.seed is not None else None)
        self.spec.check_batch(x, y, where, lambda row: f'{self.name}, item {key[row]}',
                              key.num_classes)
        return x, y


def collated(collate, items, channel, where, seed):
    """``collate(items)`` (seeded with ``seed``) as ``({channel: (b, ...)}, y (b,))``;
    what it raises is a DataError naming ``where``."""
    if seed is not None:
        _seed_all(seed)
    try:
        batch = collate(items)
    except Exception as exc:
        raise DataError(f'{where}: collate_fn raised {type(exc).__name__}: {exc}') from exc
    return split_batch(batch, channel, where)


@dataclasses.dataclass
class LoaderOptions:
    """How a dataset is read: workers, pinning, prefetching."""

    num_workers: Optional[int] = None       # None: the machine's cores, at most 8
    prefetch_factor: int = 2                # batches each worker reads ahead
    pin_memory: Optional[bool] = None       # None: when the batches go to a GPU
    timeout: float = 0                      # seconds to wait for a worker's batch (0: ever)
    worker_init_fn: object = None           # called in each worker as it starts
    multiprocessing_context: object = None  # 'fork', 'spawn', ... (None: torch's default)
    persistent: bool = True                 # keep the workers alive from pass to pass

    def workers(self):
        """The number of workers (None: :func:`default_workers`)."""
        return default_workers() if self.num_workers is None else self.num_workers

    def pin(self, device):
        """Whether batches bound for ``device`` are pinned."""
        return device.type == 'cuda' if self.pin_memory is None else self.pin_memory


class LoaderSource(BatchSource):
    """A map-style dataset's batches, read through a ``DataLoader`` (see the module).

    Its workers live from pass to pass (one set per source and kind of pinning):
    each pass hands them its batches of indices, so no pass waits for workers to
    start; a pass begun while another is still being read (a prediction from a
    callback during training) reads through workers of its own.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Map-style: ``len(dataset)`` and ``dataset[i]`` giving ``(x, y)`` or
        ``({channel: x}, y)``.
    spec : ItemSpec
        What every item must look like (from the first item).
    channel : str
        The channel of an item's ``x`` when it is not a dict.
    name : str
        How errors name the dataset (e.g. ``'the training dataset'``).
    serve : callable, optional
        ``serve(x) -> x`` on the device: the standardisation.
    options : LoaderOptions, optional
    collate : callable, optional
        The user's ``collate_fn``: it sees the raw items of each batch, and its batch
        ``(x, y)`` is checked against ``spec`` (the rows' shapes).
    begin : callable, optional
        Called once per pass, as a :class:`~pydnn2.preprocess.sources.TensorSource`'s
        ``begin`` (where a preprocessor draws the epoch's augmentation); what it
        returns reaches ``_served`` with each batch.
    draws : bool
        Whether items draw at random (each seeded from the epoch and its index,
        the epoch's seed drawn from the plan's order generator). False for items
        that draw nothing: the order generator then moves as an in-memory
        source's does.
    """

    def __init__(self, dataset, spec, channel, name, serve=None, options=None, collate=None,
                 begin=None, draws=True):
        self.dataset, self.spec, self.channel, self.name = dataset, spec, channel, name
        self.serve, self.options, self.collate = serve, options or LoaderOptions(), collate
        self.begin, self.draws = begin, draws
        self._rows = len(dataset)
        self._kept, self._busy, self.broken = {}, False, False

    @property
    def varies(self):
        """Whether each pass draws its own augmentation (a ``begin``)."""
        return self.begin is not None

    @property
    def num_rows(self):
        """Items in the dataset."""
        return self._rows

    def batches(self, plan):
        """The pass ``plan`` asks for: this rank's rows, read by the loader's workers."""
        epoch = self.begin() if self.begin is not None else None
        rows = batch_rows(self._rows, plan)
        seed = (int(torch.randint(SEED_LIMIT, (1,), generator=plan.order))
                if plan.order is not None else 0) if self.draws else None
        first = plan.start
        keys = [_Key(r.tolist(), seed, first + k + 1, plan.num_classes)
                for k, r in enumerate(rows)]
        if not keys:
            return Batches(iter(()), first, first)
        return Batches(self._served(keys, plan, rows, epoch), first + len(keys), first)

    def close(self):
        """Let the kept workers go (a later pass starts new ones)."""
        for loader, _, release in self._kept.values():
            pool.forget(loader._iterator)
            if release is not None:
                release()
        self._kept.clear()

    def _open(self, plan, keys):
        """An iterator over ``keys`` and whether it is the kept loader's: unless a pass is
        already being read through it (or workers are not kept), then a loader of its
        own."""
        options, pin = self.options, self.options.pin(plan.device)
        workers = options.workers()
        reader = _Reader(self.dataset, self.spec, self.channel, self.name, self.collate)
        if self.broken:                                # a worker died: start afresh
            self.close()
            self.broken = False
        if self._busy or not workers or not options.persistent:
            return iter(pool.open_loader(reader, options, workers, pin, keys)), False
        if pin not in self._kept:
            sampler = _Keys()
            self._kept[pin] = (pool.open_loader(reader, options, workers, pin, sampler,
                                                persistent=True), sampler, None)
        loader, sampler, release = self._kept[pin]
        sampler.keys = keys
        iterator = iter(loader)
        if release is None:     # its workers end with this source (torch's own end of
            # an idle kept loader, whenever it is collected, waited 5 s per worker)
            self._kept[pin] = (loader, sampler, weakref.finalize(self, pool.release, iterator))
        return iterator, True

    def _served(self, keys, plan, rows, epoch):
        iterator, kept = self._open(plan, keys)
        self._busy = self._busy or kept
        try:
            with pool.watching(iterator, self.name, self, kept):
                yield from self._read(iterator, keys, plan, rows, epoch)
        finally:
            self._busy = self._busy and not kept

    def _read(self, iterator, keys, plan, rows, epoch):
        for key, picked in zip(keys, rows):
            try:
                x, y = pool.raise_failure(next(iterator))
            except RuntimeError as exc:    # a worker killed by the system, a timeout
                self.broken = True
                raise pool.lost_worker(exc, self.name, key.step) or exc from None
            x = {k: v.to(plan.device, non_blocking=True) for k, v in x.items()}
            y = y.to(plan.device, non_blocking=True)
            yield self._serve(x, picked, epoch), y

    def _serve(self, x, rows, epoch):
        """A batch as read (on the device) made into what the net sees: ``serve(x)``.
        A subclass whose ``serve`` needs the batch's row numbers (``rows``) or what
        ``begin`` returned (``epoch``) overrides this."""
        return self.serve(x) if self.serve is not None else x


def first_item(dataset, channel, name, collate=None):
    """Read item 0 (seeded as the first item of an evaluation pass) and return the
    :class:`ItemSpec` it sets (of the rows of ``collate([item 0])`` with a
    ``collate_fn``)."""
    if len(dataset) == 0:
        raise DataError(f'{name} is empty; it needs at least one item')
    with pool.given_back():
        _seed_all(item_seed(0, 0))
        try:
            item = dataset[0]
        except Exception as exc:
            raise DataError(f'{name}, item 0 raised {type(exc).__name__}: {exc}') from exc
        if collate is None:
            return ItemSpec.of(item, channel, f'{name}, item 0')
        where = f'{name}, the batch of item 0 alone'
        return ItemSpec.of_batch(collated(collate, [item], channel, where, item_seed(0, -1)),
                                 channel, where)
