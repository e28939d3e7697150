"""Your own data as torch datasets and DataLoaders: :class:`DatasetPreprocessor`.

>>> import torch
>>> from torch.utils.data import TensorDataset
>>> x, y = torch.randn(100, 1, 8, 8), torch.randint(0, 10, (100,))
>>> pre = DatasetPreprocessor(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:]),
...                           num_workers=0)
>>> pre.shape_for('images'), pre.num_rows('train'), pre.num_rows('test')
((1, 8, 8), 80, 0)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .. import checks
from ..errors import ConfigError, DataError
from . import userloaders
from .base import Preprocessor
from .chain import ChainSource
from .iterable import SHARDS, StreamSource, first_stream_item
from .loader import ItemSpec, LoaderOptions, LoaderSource, first_item
from .sources import BatchSource, EpochPlan
from .standardize import ChannelStats, Standardizer, streamed_statistics

NORMALIZATIONS = ('standard', 'pydnn', None)
SET_WORDS = {'train': 'the training dataset', 'valid': 'the validation dataset',
             'test': 'the test dataset'}


@dataclasses.dataclass
class _Set:
    """One set as given: what it is and how it is read."""

    kind: str                   # 'map' (a Dataset), 'stream' (an IterableDataset) or
    #                             'loader' (a DataLoader over an IterableDataset, as it is)
    data: Any                   # the dataset, or the loader
    options: LoaderOptions      # workers, pinning, prefetching
    collate: Callable | None = None  # the user's collate_fn (it sees raw items)

    def spec(self, channel: str, name: str) -> ItemSpec:
        """The :class:`ItemSpec` of its first item (first batch, for a loader)."""
        if self.kind == 'map':
            return first_item(self.data, channel, name, self.collate)
        if self.kind == 'stream':
            return first_stream_item(self.data, channel, name, self.collate)
        return userloaders.first_batch(self.data, channel, name)

    def rows(self) -> int | None:
        """Items in the set (None for a stream)."""
        return len(self.data) if self.kind == 'map' else None


def _described(data: Any, name: str, options: LoaderOptions) -> _Set:
    """A given set as a :class:`_Set` (``options``: how plain datasets are read)."""
    if isinstance(data, torch.utils.data.DataLoader):
        if userloaders.is_iterable(data):
            return _Set('loader', data, options)
        dataset, collate, kept = userloaders.unpack(data, options.persistent)
        return _Set('map', dataset, kept, collate)
    if isinstance(data, torch.utils.data.IterableDataset):
        return _Set('stream', data, options)
    if isinstance(data, torch.utils.data.Dataset):
        return _Set('map', data, options)
    raise DataError(f'{SET_WORDS[name]} must be a torch Dataset, IterableDataset or DataLoader; '
                    f'received {type(data).__name__}')


class DatasetPreprocessor(Preprocessor):
    """Serves torch datasets to a net: read through ``DataLoader`` workers, checked batch
    by batch, standardised batch by batch on the training device.

    Parameters
    ----------
    train : torch.utils.data.Dataset
        A map-style ``Dataset``, an ``IterableDataset`` or a ``DataLoader``. Each
        item ``(x, y)`` or ``({channel: x, ...}, y)`` with ``y`` an integer class.
        Channel shapes and dtypes are those of the first item; every item is checked
        against them, for NaN and infinite values and for its class.

        - A map-style ``Dataset`` (``len`` and ``dataset[i]``) may augment at random:
          each item's draws are seeded from the epoch and its index (see
          :mod:`pydnn2.preprocess.loader`), so runs repeat exactly, resumed or not,
          on any number of workers and ranks.
        - An ``IterableDataset`` (length unknown) is shared out as ``shards`` says
          (see :mod:`pydnn2.preprocess.iterable`); its last, partial batch is
          trained too.
        - A ``DataLoader`` over a map-style dataset keeps its dataset,
          ``collate_fn`` (which sees each batch's raw items; its batch is checked),
          ``num_workers``, ``worker_init_fn``, ``pin_memory``, ``timeout``,
          ``prefetch_factor`` and ``multiprocessing_context``; its sampler,
          ``batch_size``, ``shuffle``, ``drop_last`` and ``generator`` are replaced by
          the net's batch size and training order (and each rank's share). A
          ``DataLoader`` over an ``IterableDataset`` is read as it is, batches and
          all (:mod:`pydnn2.preprocess.userloaders`).
    valid, test : as ``train``, optional
        Evaluated every epoch (valid) and at each new best (test); none by default.
    channel : str
        The channel name of an item's ``x`` when it is not a dict.
    normalize : {'standard', 'pydnn'} or None
        ``'standard'``: each value channel centred on its mean training row and
        divided by the standard deviation of all its values (as
        :class:`~pydnn2.preprocess.ArrayPreprocessor`); ``'pydnn'``: centred and
        divided by 255 (pydnn's images of grey levels); None: served as they
        are. The statistics come from one streamed pass over ``train`` and are
        saved with the net.
    token_channels : sequence of str
        Integer channels served as int64 tokens (for ``add_lookup_table``);
        other integer channels (uint8 images) are values.
    num_workers : int, optional
        ``DataLoader`` workers for the datasets (default: the machine's cores, at
        most 8; 0 reads in this process). They stay alive from epoch to epoch
        for map-style datasets; a stream's start anew each pass.
    pin_memory : bool, optional
        Pin batches bound for a GPU (default: when training on CUDA).
    prefetch_factor : int
        Batches each worker reads ahead.
    persistent_workers : bool
        Keep a map-style set's workers alive from pass to pass (True, the
        default: no pass waits for workers to start; False: each pass starts
        its own, holding no processes in between).
    shards : {'pydnn2', 'dataset'}
        How an ``IterableDataset`` is shared between workers and ranks:
        ``'pydnn2'`` (every reader iterates the whole stream and keeps its
        batches: each item trained once per epoch, the batches of one process)
        or ``'dataset'`` (the dataset yields each reader its own share, by
        ``torch.utils.data.get_worker_info()`` and the rank).
    """

    def __init__(self, train: Dataset | DataLoader, valid: Dataset | DataLoader | None = None,
                 test: Dataset | DataLoader | None = None, *, channel: str = 'images',
                 normalize: str | None = 'standard', token_channels: Iterable[str] = (),
                 num_workers: int | None = None, pin_memory: bool | None = None,
                 prefetch_factor: int = 2, persistent_workers: bool = True,
                 shards: str = 'pydnn2') -> None:
        if not isinstance(channel, str):
            raise ConfigError(f'channel must be a string; received {channel!r}')
        self.channel = channel
        self.normalize = checks.one_of(normalize, 'normalize', NORMALIZATIONS)
        self.shards = checks.one_of(shards, 'shards', SHARDS)
        self.token_channels = tuple(token_channels)
        num_workers = checks.integer(num_workers, 'num_workers', 0, none=True)
        if not isinstance(persistent_workers, bool):
            raise ConfigError(f'persistent_workers must be True or False; received '
                              f'{persistent_workers!r}')
        self.options = LoaderOptions(num_workers, checks.integer(prefetch_factor,
                                                                 'prefetch_factor', 1),
                                     pin_memory, persistent=persistent_workers)
        # None until set_data attaches the sets; _require_data guards the uses
        self._sets: Any = None              # [_Set or None] of train, valid, test
        self._spec: Any = None              # the ItemSpec of the items
        self._stats: Any = None             # {channel: (mean, std)}
        self._applied: Any = None           # the ChannelStats applying them
        self._sources: dict[str, Any] = {}
        self.set_data((train, valid, test), refit=True)

    def set_data(self, data: tuple | list, refit: bool = False) -> None:
        """Attach ``(train, valid, test)`` sets (valid and test may be None); with
        ``refit`` the statistics are fitted again on ``train``."""
        if not isinstance(data, (tuple, list)) or len(data) != 3:
            raise DataError('DatasetPreprocessor.set_data needs (train, valid, test) datasets')
        if data[0] is None:
            raise DataError('the training dataset is missing')
        train = _described(data[0], 'train', self.options)
        sets = [train] + [None if d is None else _described(d, name, self.options)
                          for name, d in zip(('valid', 'test'), data[1:])]
        spec = train.spec(self.channel, SET_WORDS['train'])
        if self._spec is not None and not refit and spec != self._spec:
            raise DataError(f'the training dataset serves {spec.channels}; this preprocessor '
                            f'was fitted on {self._spec.channels}')
        for name, given in zip(('valid', 'test'), sets[1:]):
            if given is not None and given.rows() != 0:
                other = given.spec(self.channel, SET_WORDS[name])
                if other.channels != spec.channels:
                    raise DataError(f'{SET_WORDS[name]} serves {other.channels}; the training '
                                    f'dataset serves {spec.channels}')
        missing = set(self.token_channels) - set(spec.channels)
        if missing:
            raise DataError(f'token_channels names {sorted(missing)}, but the items have '
                            f'channels {sorted(spec.channels)}')
        self.close()
        self._sets, self._spec = sets, spec
        if refit or self._stats is None:
            self._stats = self._fit()
            self._applied = ChannelStats(self._stats, self.token_channels)

    def close(self) -> None:
        """Let go of the ``DataLoader`` workers kept alive between passes (they stop when
        the preprocessor is dropped, too)."""
        for source in self._sources.values():
            source.close()
        self._sources = {}

    def _fit(self) -> dict[str, tuple]:
        """The statistics of one in-order pass over the training dataset."""
        source = self._make(self._sets[0], SET_WORDS['train'], None)
        plan = EpochPlan(batch_size=256, whole_batches=False)
        values = ({k: v for k, v in x.items() if k not in self.token_channels}
                  for x, _ in source.batches(plan))
        stats = streamed_statistics(values, self.normalize)
        source.close()
        for name in self.token_channels:
            stats[name] = (np.zeros(self._spec.channels[name][0], np.float32), 1.0)
        return stats

    def _make(self, given: _Set, words: str, serve: Callable | None) -> Any:
        """The batch source of one set."""
        if given.kind == 'map':
            return LoaderSource(given.data, self._spec, self.channel, words, serve,
                                given.options, given.collate)
        if given.kind == 'stream':
            return StreamSource(given.data, self._spec, self.channel, words, serve,
                                given.options, self.shards, given.collate)
        return userloaders.LoaderStream(given.data, self._spec, self.channel, words, serve)

    # -- the protocol -------------------------------------------------------------------------

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{channel: row shape}`` of the items."""
        return {name: shape for name, (shape, _) in self._spec.channels.items()}

    def dtype_for(self, channel: str) -> str:
        """``'int64'`` for token channels, else ``'float32'``."""
        self._known(channel)
        return 'int64' if channel in self.token_channels else 'float32'

    def has_data(self) -> bool:
        """Whether datasets are attached (a loaded net's preprocessor has none)."""
        return self._sets is not None

    def source(self, name: str, augment: bool = True) -> BatchSource:
        """The batches of dataset ``name`` ('train', 'valid', 'test', or 'all' for the three
        together); a dataset augments on its own, so ``augment`` changes nothing."""
        self._require_data(f'source({name!r})')
        if name not in self._sources:
            serve = self._serve
            if name == 'all':
                self._sources[name] = self._all(serve)
            else:
                given = dict(zip(SET_WORDS, self._sets))[name]
                self._sources[name] = self._make(given or _Set('map', _Empty(), self.options),
                                                 SET_WORDS[name], serve)
        return self._sources[name]

    def _serve(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._applied.apply(x, True)

    def _all(self, serve: Callable) -> BatchSource:
        """Train, valid and test as one set (the final epochs): one dataset when all are
        map-style datasets read alike, else each set's batches in turn."""
        given = [(s, w) for s, w in zip(self._sets, SET_WORDS.values()) if s is not None]
        first = given[0][0]
        if all(s.kind == 'map' and s.collate is first.collate for s, _ in given):
            return LoaderSource(torch.utils.data.ConcatDataset([s.data for s, _ in given]),
                                self._spec, self.channel, 'the datasets', serve,
                                first.options, first.collate)
        return ChainSource([self._make(s, w, serve) for s, w in given])

    def num_rows(self, name: str) -> int | None:
        """Items in dataset ``name`` (0 for a dataset not given; None for a stream)."""
        self._require_data(f'num_rows({name!r})')
        if name == 'all':
            rows = [s.rows() for s in self._sets if s is not None]
            return None if None in rows else sum(rows)
        given = dict(zip(SET_WORDS, self._sets))[name]
        return 0 if given is None else given.rows()

    def get_files(self) -> list[np.ndarray | None]:
        """The item indices of ``[train, valid, test]`` (what confusion matrices trace
        mistakes back to); None for a stream."""
        self._require_data('get_files')
        rows = [self.num_rows(name) for name in SET_WORDS]
        return [np.arange(n) if n is not None else None for n in rows]

    def get_raw_x(self) -> list[Any]:
        """The sets ``[train, valid, test]`` as given (an empty dataset for one not
        given)."""
        self._require_data('get_raw_x')
        return [s.data if s is not None else _Empty() for s in self._sets]

    def preprocess(self, data: Any) -> dict[str, torch.Tensor]:
        """Standardise raw rows (an array, or a dict of arrays by channel) as the items'
        ``x`` are, for predict."""
        x = data if isinstance(data, dict) else {self.channel: data}
        x = {k: torch.as_tensor(np.asarray(v)) for k, v in x.items()}
        for name, v in x.items():
            if name not in self._spec.channels or tuple(v.shape[1:]) != self.shape_for(name):
                raise DataError(f'data to predict: channel {name!r} of rows {tuple(v.shape[1:])}'
                                f'; expected channels {self.shapes()}')
        return self._applied.apply({k: v.to(self.device) for k, v in x.items()}, False)

    def prepare(self, data: Any, what: str = 'data to predict') -> dict[str, np.ndarray]:
        """Raw rows as numpy arrays by channel (what an exported net takes)."""
        x = data if isinstance(data, dict) else {self.channel: data}
        return {k: np.asarray(v) for k, v in x.items()}

    def standardizer(self) -> Standardizer:
        """The standardisation as a module (tokens pass unchanged)."""
        return self._applied.module()

    def state_dict(self) -> dict[str, Any]:
        """The items' channels and the statistics, as plain data (never the datasets)."""
        return {'channel': self.channel, 'normalize': self.normalize,
                'token_channels': list(self.token_channels),
                'channels': {n: [list(shape), kind] for n, (shape, kind)
                             in self._spec.channels.items()},
                'dict_items': self._spec.dict_items,
                'mean': {n: torch.from_numpy(np.asarray(m, np.float32))
                         for n, (m, _) in self._stats.items()},
                'std': {n: float(s) for n, (_, s) in self._stats.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DatasetPreprocessor:
        """Rebuild the preprocessor (statistics only, no datasets) from its state."""
        self = cls.__new__(cls)
        self.channel, self.normalize = state['channel'], state['normalize']
        self.token_channels = tuple(state['token_channels'])
        self._spec = ItemSpec({n: (tuple(shape), kind) for n, (shape, kind)
                               in state['channels'].items()}, state['dict_items'])
        self._stats = {n: (state['mean'][n].numpy(), float(state['std'][n]))
                       for n in state['mean']}
        self._applied = ChannelStats(self._stats, self.token_channels)
        self.options, self.shards = LoaderOptions(), 'pydnn2'
        self._sets, self._sources = None, {}
        return self


class _Empty(torch.utils.data.Dataset):
    """A dataset of no items (a set not given)."""

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: int) -> Any:
        raise IndexError(index)
