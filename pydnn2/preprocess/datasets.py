"""Your own data as torch datasets: :class:`DatasetPreprocessor`.

>>> import torch
>>> from torch.utils.data import TensorDataset
>>> x, y = torch.randn(100, 1, 8, 8), torch.randint(0, 10, (100,))
>>> pre = DatasetPreprocessor(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:]),
...                           num_workers=0)
>>> pre.shape_for('images'), pre.num_rows('train'), pre.num_rows('test')
((1, 8, 8), 80, 0)
"""

import numpy as np
import torch

from .. import checks
from ..errors import ConfigError, DataError
from .base import Preprocessor
from .loader import ItemSpec, LoaderOptions, LoaderSource, first_item
from .sources import EpochPlan
from .standardize import ChannelStats, streamed_statistics

NORMALIZATIONS = ('standard', 'pydnn', None)
SET_WORDS = {'train': 'the training dataset', 'valid': 'the validation dataset',
             'test': 'the test dataset'}


class DatasetPreprocessor(Preprocessor):
    """Serves torch datasets to a net: read through ``DataLoader`` workers, checked item
    by item, standardised batch by batch on the training device.

    Parameters
    ----------
    train : torch.utils.data.Dataset
        Map-style (``len`` and ``dataset[i]``); each item ``(x, y)`` or
        ``({channel: x, ...}, y)`` with ``y`` an integer class. Channel shapes and
        dtypes are those of the first item; every item is checked against them.
        A dataset may augment at random: each item's draws are seeded from the
        epoch and its index (see :mod:`pydnn2.preprocess.loader`), so runs repeat
        exactly, resumed or not, on any number of workers and ranks.
    valid, test : torch.utils.data.Dataset, optional
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
        ``DataLoader`` workers (default: the machine's cores, at most 8; 0 reads
        in this process).
    pin_memory : bool, optional
        Pin batches bound for a GPU (default: when training on CUDA).
    prefetch_factor : int
        Batches each worker reads ahead.
    """

    def __init__(self, train, valid=None, test=None, *, channel='images', normalize='standard',
                 token_channels=(), num_workers=None, pin_memory=None, prefetch_factor=2):
        if not isinstance(channel, str):
            raise ConfigError(f'channel must be a string; received {channel!r}')
        self.channel = channel
        self.normalize = checks.one_of(normalize, 'normalize', NORMALIZATIONS)
        self.token_channels = tuple(token_channels)
        num_workers = checks.integer(num_workers, 'num_workers', 0, none=True)
        self.options = LoaderOptions(num_workers, checks.integer(prefetch_factor,
                                                                 'prefetch_factor', 1),
                                     pin_memory)
        self._datasets = self._spec = self._stats = None
        self.set_data((train, valid, test), refit=True)

    def set_data(self, data, refit=False):
        """Attach ``(train, valid, test)`` datasets (valid and test may be None); with
        ``refit`` the statistics are fitted again on ``train``."""
        if not isinstance(data, (tuple, list)) or len(data) != 3:
            raise DataError('DatasetPreprocessor.set_data needs (train, valid, test) datasets')
        train, valid, test = data
        for name, dataset in zip(SET_WORDS, data):
            if dataset is None and name == 'train':
                raise DataError('the training dataset is missing')
            if dataset is not None and not isinstance(dataset, torch.utils.data.Dataset):
                raise DataError(f'{SET_WORDS[name]} must be a torch.utils.data.Dataset; '
                                f'received {type(dataset).__name__}')
        spec = first_item(train, self.channel, SET_WORDS['train'])
        if self._spec is not None and not refit and spec != self._spec:
            raise DataError(f'the training dataset serves {spec.channels}; this preprocessor '
                            f'was fitted on {self._spec.channels}')
        for name, dataset in (('valid', valid), ('test', test)):
            if dataset is not None and len(dataset):
                other = first_item(dataset, self.channel, SET_WORDS[name])
                if other.channels != spec.channels:
                    raise DataError(f'{SET_WORDS[name]} serves {other.channels}; the training '
                                    f'dataset serves {spec.channels}')
        missing = set(self.token_channels) - set(spec.channels)
        if missing:
            raise DataError(f'token_channels names {sorted(missing)}, but the items have '
                            f'channels {sorted(spec.channels)}')
        self._datasets, self._spec, self._sources = (train, valid, test), spec, {}
        if refit or self._stats is None:
            self._stats = self._fit()
            self._applied = ChannelStats(self._stats, self.token_channels)

    def _fit(self):
        """The statistics of one in-order pass over the training dataset."""
        source = LoaderSource(self._datasets[0], self._spec, self.channel, SET_WORDS['train'],
                              options=self.options)
        plan = EpochPlan(batch_size=256, whole_batches=False)
        values = ({k: v for k, v in x.items() if k not in self.token_channels}
                  for x, _ in source.batches(plan))
        stats = streamed_statistics(values, self.normalize)
        for name in self.token_channels:
            stats[name] = (np.zeros(self._spec.channels[name][0], np.float32), 1.0)
        return stats

    # -- the protocol -------------------------------------------------------------------------

    def shapes(self):
        """``{channel: row shape}`` of the items."""
        return {name: shape for name, (shape, _) in self._spec.channels.items()}

    def dtype_for(self, channel):
        """``'int64'`` for token channels, else ``'float32'``."""
        self._known(channel)
        return 'int64' if channel in self.token_channels else 'float32'

    def has_data(self):
        """Whether datasets are attached (a loaded net's preprocessor has none)."""
        return self._datasets is not None

    def source(self, name, augment=True):
        """The batches of dataset ``name`` ('train', 'valid', 'test', or 'all' for the three
        together); a dataset augments on its own, so ``augment`` changes nothing."""
        self._require_data(f'source({name!r})')
        if name not in self._sources:
            self._sources[name] = LoaderSource(self._dataset(name), self._spec, self.channel,
                                               SET_WORDS.get(name, 'the datasets'),
                                               serve=lambda x: self._applied.apply(x, True),
                                               options=self.options)
        return self._sources[name]

    def _dataset(self, name):
        train, valid, test = self._datasets
        if name == 'all':
            return torch.utils.data.ConcatDataset([d for d in self._datasets if d is not None])
        dataset = dict(zip(SET_WORDS, self._datasets))[name]
        return dataset if dataset is not None else _Empty()

    def num_rows(self, name):
        """Items in dataset ``name`` (0 for a dataset not given)."""
        self._require_data(f'num_rows({name!r})')
        if name == 'all':
            return sum(len(d) for d in self._datasets if d is not None)
        return len(self._dataset(name))

    def get_files(self):
        """The item indices of ``[train, valid, test]`` (what confusion matrices trace
        mistakes back to)."""
        self._require_data('get_files')
        return [np.arange(self.num_rows(name)) for name in SET_WORDS]

    def get_raw_x(self):
        """The datasets ``[train, valid, test]`` (an empty one for a set not given)."""
        self._require_data('get_raw_x')
        return [self._dataset(name) for name in SET_WORDS]

    def preprocess(self, data):
        """Standardise raw rows (an array, or a dict of arrays by channel) as the items'
        ``x`` are, for predict."""
        x = data if isinstance(data, dict) else {self.channel: data}
        x = {k: torch.as_tensor(np.asarray(v)) for k, v in x.items()}
        for name, v in x.items():
            if name not in self._spec.channels or tuple(v.shape[1:]) != self.shape_for(name):
                raise DataError(f'data to predict: channel {name!r} of rows {tuple(v.shape[1:])}'
                                f'; expected channels {self.shapes()}')
        return self._applied.apply({k: v.to(self.device) for k, v in x.items()}, False)

    def prepare(self, data, what='data to predict'):
        """Raw rows as numpy arrays by channel (what an exported net takes)."""
        x = data if isinstance(data, dict) else {self.channel: data}
        return {k: np.asarray(v) for k, v in x.items()}

    def standardizer(self):
        """The standardisation as a module (tokens pass unchanged)."""
        return self._applied.module()

    def state_dict(self):
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
    def from_state(cls, state):
        """Rebuild the preprocessor (statistics only, no datasets) from its state."""
        self = cls.__new__(cls)
        self.channel, self.normalize = state['channel'], state['normalize']
        self.token_channels = tuple(state['token_channels'])
        self._spec = ItemSpec({n: (tuple(shape), kind) for n, (shape, kind)
                               in state['channels'].items()}, state['dict_items'])
        self._stats = {n: (state['mean'][n].numpy(), float(state['std'][n]))
                       for n in state['mean']}
        self._applied = ChannelStats(self._stats, self.token_channels)
        self.options, self._datasets, self._sources = LoaderOptions(), None, {}
        return self


class _Empty(torch.utils.data.Dataset):
    """A dataset of no items (a set not given)."""

    def __len__(self):
        return 0

    def __getitem__(self, index):
        raise IndexError(index)
