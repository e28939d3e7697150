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
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import DataError
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

    def check(self, x, y, where, num_classes=None):
        """Refuse an item of other channels, shapes or dtypes, with NaN or infinite
        values, or with a class outside ``0 .. num_classes - 1``."""
        if set(x) != set(self.channels):
            raise DataError(f'{where} has channels {sorted(x)}; expected '
                            f'{sorted(self.channels)} (as the first item)')
        for name, v in x.items():
            shape, kind = self.channels[name]
            got = _kind(v, f'{where}, channel {name!r}')
            if tuple(v.shape) != shape or got != kind:
                raise DataError(f'{where}, channel {name!r}: expected {kind} values of shape '
                                f'{shape} (as the first item); received {v.dtype} of shape '
                                f'{tuple(v.shape)}')
            if kind == 'float' and not bool(torch.isfinite(v).all()):
                raise DataError(f'{where}, channel {name!r} holds NaN or infinite values')
        if y < 0 or (num_classes is not None and y >= num_classes):
            limit = f'0 .. {num_classes - 1}' if num_classes is not None else '>= 0'
            raise DataError(f'{where} has class {y}; expected a class in {limit}')


def _kind(v, where):
    if v.dtype.is_floating_point:
        return 'float'
    if v.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        return 'int'
    raise DataError(f'{where}: expected numbers; received dtype {v.dtype}')


def split_item(item, channel, where):
    """An item ``(x, y)`` or ``({channel: x}, y)`` as ``({channel: tensor}, int class)``."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f'{where}: expected an item (x, y) or ({{channel: x}}, y); received '
                        f'{type(item).__name__}' + (f' of length {len(item)}'
                                                    if isinstance(item, (tuple, list)) else ''))
    x, y = item
    x = dict(x) if isinstance(x, dict) else {channel: x}
    try:
        x = {name: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
             for name, v in x.items()}
        label = int(y) if isinstance(y, (int, np.integer)) else int(torch.as_tensor(y).item())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f'{where}: expected array-like inputs and one integer class; '
                        f'{type(exc).__name__}: {exc}') from None
    return x, label


class _Key(list):
    """The indices of one batch, with the seed of the epoch's item draws."""

    def __init__(self, indices, seed):
        super().__init__(indices)
        self.seed = seed


def item_seed(epoch_seed, index):
    """The seed of item ``index``'s draws in the epoch of ``epoch_seed``."""
    return (epoch_seed * 1_000_003 + index * 7_919 + 1) % SEED_LIMIT


def _seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


class _Reader(torch.utils.data.Dataset):
    """The user's dataset, read a batch of items at a time: each item seeded, read,
    made into channels and checked."""

    def __init__(self, dataset, spec, channel, name, num_classes):
        self.dataset, self.spec, self.channel = dataset, spec, channel
        self.name, self.num_classes = name, num_classes

    def __len__(self):
        return len(self.dataset)

    def __getitems__(self, key):
        restore = key.seed is not None and torch.utils.data.get_worker_info() is None
        saved = (torch.random.get_rng_state(), np.random.get_state(),
                 random.getstate()) if restore else None
        try:
            return [self._item(int(i), key.seed) for i in key]
        finally:
            if saved is not None:          # this process's generators, given back
                torch.random.set_rng_state(saved[0])
                np.random.set_state(saved[1])
                random.setstate(saved[2])

    def _item(self, index, seed):
        where = f'{self.name}, item {index}'
        if seed is not None:                  # None: items that draw nothing
            _seed_all(item_seed(seed, index))
        try:
            item = self.dataset[index]
        except Exception as exc:  # noqa: BLE001 - the user's error, named with its item
            raise DataError(f'{where} raised {type(exc).__name__}: {exc}') from exc
        x, y = split_item(item, self.channel, where)
        self.spec.check(x, y, where, self.num_classes)
        return x, y


def _collate(items):
    """Checked items ``[({channel: tensor}, class)]`` as ``({channel: (b, ...)}, y (b,))``."""
    return ({name: torch.stack([x[name] for x, _ in items]) for name in items[0][0]},
            torch.tensor([y for _, y in items], dtype=torch.long))


@dataclasses.dataclass
class LoaderOptions:
    """How a dataset is read: workers, pinning, prefetching."""

    num_workers: Optional[int] = None       # None: the machine's cores, at most 8
    prefetch_factor: int = 2                # batches each worker reads ahead
    pin_memory: Optional[bool] = None       # None: when the batches go to a GPU
    timeout: float = 0                      # seconds to wait for a worker's batch (0: ever)
    worker_init_fn: object = None           # called in each worker as it starts
    multiprocessing_context: object = None  # 'fork', 'spawn', ... (None: torch's default)


class LoaderSource(BatchSource):
    """A map-style dataset's batches, read through a ``DataLoader`` (see the module).

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
    begin : callable, optional
        Called once per pass, as a :class:`~pydnn2.preprocess.sources.TensorSource`'s
        ``begin`` (where a preprocessor draws the epoch's augmentation); what it
        returns reaches :meth:`_serve` with each batch.
    draws : bool
        Whether items draw at random (each seeded from the epoch and its index,
        the epoch's seed drawn from the plan's order generator). False for items
        that draw nothing: the order generator then moves as an in-memory
        source's does.
    """

    def __init__(self, dataset, spec, channel, name, serve=None, options=None, begin=None,
                 draws=True):
        self.dataset, self.spec, self.channel, self.name = dataset, spec, channel, name
        self.serve, self.options = serve, options or LoaderOptions()
        self.begin, self.draws = begin, draws
        self._rows = len(dataset)

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
        keys = [_Key(r.tolist(), seed) for r in rows]
        if not keys:
            return Batches(iter(()), first, first)
        loader = self._loader(plan, keys)
        return Batches(self._served(loader, plan, first, rows, epoch), first + len(keys), first)

    def _loader(self, plan, keys):
        options = self.options
        workers = default_workers() if options.num_workers is None else options.num_workers
        pin = (plan.device.type == 'cuda') if options.pin_memory is None else options.pin_memory
        reader = _Reader(self.dataset, self.spec, self.channel, self.name,
                         plan.num_classes)
        extra = {'prefetch_factor': options.prefetch_factor,
                 'multiprocessing_context': options.multiprocessing_context} if workers else {}
        return DataLoader(reader, batch_sampler=keys, num_workers=workers, collate_fn=_collate,
                          pin_memory=pin, timeout=options.timeout,
                          worker_init_fn=options.worker_init_fn, **extra)

    def _served(self, loader, plan, first, rows=None, epoch=None):
        step = first
        iterator = iter(loader)
        while True:
            try:
                x, y = next(iterator)
            except StopIteration:
                return
            except DataError:
                raise
            except RuntimeError as exc:      # a worker killed by the system, a timeout
                raise DataError(f'{self.name}: reading batch {step + 1} failed: {exc}') from None
            step += 1
            x = {k: v.to(plan.device, non_blocking=True) for k, v in x.items()}
            y = y.to(plan.device, non_blocking=True)
            yield self._serve(x, rows[step - first - 1], epoch), y

    def _serve(self, x, rows, epoch):
        """A batch as read (on the device) made into what the net sees: ``serve(x)``.
        A subclass whose ``serve`` needs the batch's row numbers (``rows``) or what
        ``begin`` returned (``epoch``) overrides this."""
        return self.serve(x) if self.serve is not None else x


def first_item(dataset, channel, name):
    """Read item 0 (seeded as the first item of an evaluation pass) and return the
    :class:`ItemSpec` it sets."""
    if len(dataset) == 0:
        raise DataError(f'{name} is empty; it needs at least one item')
    saved = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        _seed_all(item_seed(0, 0))
        return ItemSpec.of(dataset[0], channel, f'{name}, item 0')
    finally:
        torch.random.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])

