"""Torch datasets and ``DataLoader``\\ s given to ``predict``, ``evaluate`` and the rest.

:class:`DatasetSource` serves what a user hands to :func:`~pydnn2.evaluate.predict`
(and ``evaluate``, ``get_outputs``, ``make_confusion_matrix``, ``interpret``)
as a batch source, so that they read it as they read arrays and set names:

- a **map-style** ``Dataset`` is read in row order, a batch of rows at a time,
  through a ``DataLoader`` (with a
  :class:`~pydnn2.preprocess.DatasetPreprocessor`'s workers, else in this
  process); each item's random draws are seeded from its index as an evaluation
  pass of training seeds them (:func:`pydnn2.preprocess.loader.item_seed`), so
  a dataset that augments at random gives the items training evaluated;
- a **DataLoader** is read as it batches (its own ``batch_size``, ``collate_fn``
  and workers);
- an ``IterableDataset`` is read in the order it yields, in batches.

Items (and a loader's batches) are ``(x, y)``, ``(x,)`` or ``x`` alone, ``x`` an
array, a tensor, a list of arrays (images of different sizes) or a dict of them
by channel; ``y`` is needed where classes are (``evaluate``, ``interpret``).
Each batch of raw ``x`` becomes channels through the net's preprocessor
(:meth:`~pydnn2.preprocess.Preprocessor.preprocess`: a ``DatasetPreprocessor``'s
standardisation, an ``ArrayPreprocessor``'s checks and standardisation, an
image preprocessor's resizing).

**Shares of several processes** (an :class:`~pydnn2.preprocess.sources.EpochPlan`
with a :class:`~pydnn2.preprocess.sources.Shard`): a map-style dataset is split
by rows (each rank its contiguous block, in batches); a DataLoader that reads in
order (``shuffle=False``, the default sampler) is split by whole batches, so each
batch is collated exactly as in one process (a ``collate_fn`` that pads to the
longest row of a batch gives the same batches); a DataLoader with a sampler of
its own and an ``IterableDataset`` cannot be split: rank 0 reads them whole and
the other ranks serve nothing. Gathered in rank order, the shares are the rows
in order, as one process reads them.
"""

import random

import numpy as np
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, DistributedSampler,
                              IterableDataset, SequentialSampler)

from ..errors import ConfigError, DataError
from ..preprocess.datasets import DatasetPreprocessor
from ..preprocess.loader import LoaderOptions, default_workers, item_seed
from ..preprocess.sources import Batches, BatchSource, batch_rows


def is_torch_data(data):
    """Whether ``data`` is a torch ``Dataset`` or ``DataLoader``."""
    return isinstance(data, (Dataset, DataLoader))


def split_item(item, where, labelled):
    """An item or batch ``(x, y)``, ``(x,)`` or ``x`` as ``(x, y)``, ``y`` None when
    absent; a :class:`DataError` naming ``where`` when classes are needed and absent."""
    if isinstance(item, (tuple, list)) and len(item) in (1, 2):
        x, y = item[0], item[1] if len(item) == 2 else None
    else:
        x, y = item, None
    if labelled and y is None:
        raise DataError(f'{where}: expected (x, y) with classes y; received x alone '
                        f'({type(item).__name__})')
    return x, y


def raw_x(x):
    """Raw input with tensors as numpy arrays (what preprocessors' ``preprocess`` takes)."""
    if isinstance(x, dict):
        return {name: raw_x(v) for name, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [raw_x(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


def collate(items):
    """Items ``[(x, y or None)]`` as one raw batch ``(x, y)``: each channel stacked into
    an array when its rows agree in shape and dtype, else a list of rows (images of
    different sizes); ``y`` an int64 array, or None when no item has classes."""
    first = items[0][0]
    if isinstance(first, dict):
        x = {name: _stack([raw_x(i[0][name]) for i in items]) for name in first}
    else:
        x = _stack([raw_x(i[0]) for i in items])
    ys = [i[1] for i in items]
    if all(y is None for y in ys):
        return x, None
    return x, np.asarray([int(torch.as_tensor(y).item()) for y in ys], np.int64)


def _stack(rows):
    arrays = [np.asarray(r) for r in rows]
    if all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays):
        return np.stack(arrays)
    return arrays


class _Items(Dataset):
    """A map-style dataset read a batch of rows at a time, each item seeded from its
    index as an evaluation pass of training seeds it, split into ``(x, y or None)``."""

    def __init__(self, dataset, name, labelled):
        self.dataset, self.name, self.labelled = dataset, name, labelled

    def __len__(self):
        return len(self.dataset)

    def __getitems__(self, indices):
        in_worker = torch.utils.data.get_worker_info() is not None
        saved = None if in_worker else (torch.random.get_rng_state(), np.random.get_state(),
                                        random.getstate())
        try:
            return [self._item(int(i)) for i in indices]
        finally:
            if saved is not None:          # this process's generators, given back
                torch.random.set_rng_state(saved[0])
                np.random.set_state(saved[1])
                random.setstate(saved[2])

    def _item(self, index):
        where = f'{self.name}, item {index}'
        seed = item_seed(0, index)
        torch.manual_seed(seed)
        np.random.seed(seed % 2 ** 32)
        random.seed(seed)
        try:
            item = self.dataset[index]
        except Exception as exc:  # the user's error, named with its item
            raise DataError(f'{where} raised {type(exc).__name__}: {exc}') from exc
        return split_item(item, where, self.labelled)


def _in_order(loader):
    """Whether a DataLoader reads a map-style dataset in row order, in batches (its
    sampler is the default sequential one): then it can be split by batches."""
    sampler = loader.batch_sampler
    return type(sampler) is BatchSampler and isinstance(sampler.sampler, SequentialSampler)


class DatasetSource(BatchSource):
    """A torch ``Dataset`` or ``DataLoader`` given to predict and the rest, as a batch
    source (see the module).

    Parameters
    ----------
    preprocessor : pydnn2.preprocess.Preprocessor
        Makes each batch of raw ``x`` into channels (``preprocess``).
    data : torch.utils.data.Dataset or torch.utils.data.DataLoader
    what : str
        The function reading it, for errors (``'predict'``, ``'evaluate'``, ...).
    labelled : bool
        Whether every item must carry its class.
    """

    def __init__(self, preprocessor, data, what, labelled=False):
        self.preprocessor, self.labelled = preprocessor, labelled
        self.loader = data if isinstance(data, DataLoader) else None
        self.dataset = data.dataset if self.loader is not None else data
        self.name = f'{what}: the {"DataLoader" if self.loader is not None else "dataset"}'
        self.mapped = not isinstance(self.dataset, IterableDataset)
        if self.loader is None and self.mapped and not hasattr(self.dataset, '__len__'):
            raise DataError(f'{self.name} has no len(); a map-style dataset needs __len__ '
                            '(or make it an IterableDataset)')

    @property
    def splits(self):
        """Whether the rows can be shared out between ranks (see the module)."""
        return self.mapped and (self.loader is None or _in_order(self.loader))

    @property
    def num_rows(self):
        """Rows served in one process (None when unknown until read)."""
        if not self.splits:
            return None
        if self.loader is None:
            return len(self.dataset)
        sampler = self.loader.batch_sampler
        return len(sampler) * sampler.batch_size if sampler.drop_last else len(self.dataset)

    def batches(self, plan):
        """This rank's batches (see the module), made into channels on the plan's device."""
        if plan.shard.world > 1 and self.loader is not None and isinstance(
                self.loader.sampler, DistributedSampler):
            raise ConfigError(f'{self.name} has a DistributedSampler, which gives each process '
                              'a share of its own; shard=True shares the rows out itself: '
                              'pass a DataLoader that reads every row in order (shuffle=False)')
        if self.splits and self.loader is None:
            rows = batch_rows(self.num_rows, plan)
            raw, steps = self._dataset_loader([r.tolist() for r in rows]), len(rows)
        elif self.splits and (plan.shard.world > 1 or plan.start):
            batches = list(self.loader.batch_sampler)
            start, stop = plan.shard.block(len(batches))
            mine = batches[start:stop][plan.start:]
            raw, steps = self._rebuilt(mine), len(mine)
        elif plan.shard.rank == 0:            # read whole by rank 0 (see the module)
            raw, steps = (self.loader if self.loader is not None else self._stream(plan)), None
        else:
            raw, steps = iter(()), 0
        served = self._served(raw, plan)
        return Batches(served, None if steps is None else plan.start + steps, plan.start)

    def _dataset_loader(self, keys):
        """A map-style dataset's rows ``keys`` (a list of batches), read through a loader."""
        pre = self.preprocessor
        options = pre.options if isinstance(pre, DatasetPreprocessor) else LoaderOptions(0)
        workers = default_workers() if options.num_workers is None else options.num_workers
        workers = min(workers, len(keys))
        extra = {'prefetch_factor': options.prefetch_factor,
                 'multiprocessing_context': options.multiprocessing_context} if workers else {}
        return DataLoader(_Items(self.dataset, self.name, self.labelled), batch_sampler=keys,
                          num_workers=workers, collate_fn=collate, timeout=options.timeout,
                          worker_init_fn=options.worker_init_fn, **extra)

    def _rebuilt(self, batches):
        """The user's loader over ``batches`` of indices only (same collation, workers)."""
        loader = self.loader
        extra = ({'prefetch_factor': loader.prefetch_factor,
                  'multiprocessing_context': loader.multiprocessing_context}
                 if loader.num_workers else {})
        return DataLoader(loader.dataset, batch_sampler=batches, num_workers=loader.num_workers,
                          collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                          timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                          generator=loader.generator, **extra)

    def _stream(self, plan):
        """An IterableDataset's items, in batches of the plan's size."""
        batch, index = [], 0
        for item in self.dataset:
            batch.append(split_item(item, f'{self.name}, item {index}', self.labelled))
            index += 1
            if len(batch) == plan.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)

    def _served(self, raw, plan):
        """Each raw batch as ``(channels, classes)`` on the plan's device."""
        iterator, step = iter(raw), plan.start
        while True:
            where = f'{self.name}, batch {step + 1}'
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except DataError:
                raise
            except Exception as exc:  # the user's loader, named with its batch
                raise DataError(f'{where}: reading it raised {type(exc).__name__}: '
                                f'{exc}') from exc
            step += 1
            yield self._channels(batch, where, plan)

    def _channels(self, batch, where, plan):
        x, y = split_item(batch, where, self.labelled)
        try:
            x = self.preprocessor.preprocess(raw_x(x))
        except DataError as exc:
            raise DataError(f'{where}: {exc}') from None
        rows = len(next(iter(x.values())))
        if y is None:
            y = torch.full((rows,), -1, dtype=torch.long)
        else:
            y = torch.as_tensor(raw_x(y)).long().reshape(-1)
            _check_classes(y, rows, where, plan.num_classes)
        return ({k: v.to(plan.device, non_blocking=True) for k, v in x.items()},
                y.to(plan.device))


def _check_classes(y, rows, where, num_classes):
    if len(y) != rows:
        raise DataError(f'{where}: expected one class per row ({rows} rows); received '
                        f'{len(y)} classes')
    if len(y) and (int(y.min()) < 0 or (num_classes and int(y.max()) >= num_classes)):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        limit = f'0 .. {num_classes - 1}' if num_classes else '>= 0'
        raise DataError(f'{where}: expected classes in {limit}; received class {bad}')


class DatasetInputs:
    """Row ``i`` of a map-style dataset's raw input, as ``inputs[i]`` (the inputs an
    :class:`~pydnn2.evaluate.Interpretation` shows): the item's ``x``, or its channel
    ``channel`` when ``x`` is a dict."""

    def __init__(self, dataset, channel):
        self.dataset, self.channel = dataset, channel

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, row):
        x, _ = split_item(self.dataset[int(row)], f'the dataset, item {row}', False)
        if isinstance(x, dict):
            x = x[self.channel] if self.channel in x else next(iter(x.values()))
        return raw_x(x)

    @classmethod
    def of(cls, data, channel):
        """The inputs of a Dataset or DataLoader given to interpret, when rows can be
        read by index (a map-style dataset read in order); None otherwise."""
        source = DatasetSource(None, data, 'interpret')
        return cls(source.dataset, channel) if source.splits else None
