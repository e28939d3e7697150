"""The preprocessor for arrays: each channel standardised with training statistics
(see :class:`ArrayPreprocessor`).

The arrays are kept as given, never copied whole: statistics are fitted in one
chunked pass, and each batch's rows are read and standardised when the batch is
made (:class:`~pydnn2.preprocess.sources.TensorSource`). A ``numpy.memmap`` is read
from disk batch by batch with bounded memory (:mod:`pydnn2.preprocess.rows`).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from ..errors import DataError
from .base import Preprocessor
from .rows import as_tensor, channel_statistics, chunk_rows, is_rows, reader
from .sources import TensorSource
from .standardize import ChannelStats, Standardizer
from .split import SET_NAMES, as_labels, num_rows

#: The largest magnitude float32 holds; float64 values beyond it cannot be served.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _stack_rows(rows: list | tuple, where: str, row_shape: tuple = ()) -> np.ndarray:
    """Stack a list of equally shaped rows into one array, or explain why not."""
    if len(rows) == 0:
        return np.zeros((0,) + tuple(row_shape))
    arrays = [np.asarray(r) for r in rows]
    for i, a in enumerate(arrays):
        if a.shape != arrays[0].shape:
            raise DataError(f'{where}: row {i} has shape {a.shape} but row 0 has '
                            f'{arrays[0].shape}; ArrayPreprocessor needs rows of one shape '
                            '(for images of different sizes use Canonicalizer or Rotator360)')
    return np.stack(arrays)


class ArrayPreprocessor(Preprocessor):
    """Preprocessor over array sets, standardised per channel.

    Each channel is centred on the training set's mean row and divided by
    the training set's standard deviation (one number per channel), so no
    statistic ever looks at validation or test data. The arrays are not
    copied: each batch is read and standardised as it is made, and a
    ``numpy.memmap`` (or a set :func:`~pydnn2.preprocess.split_training_data`
    cut from one) is read from disk batch by batch.

    Parameters
    ----------
    sets : tuple
        The output of :func:`~pydnn2.preprocess.split_training_data`.
    channel : str
        The channel name for ``x`` when it is a single array; a dict ``x``
        keeps its own channel names.
    normalize : bool
        False serves the data as float32 without standardising it.
    token_channels : sequence of str
        Channels of integer tokens ``(N, T)`` (e.g. word indices), served
        unchanged as int64 for ``add_lookup_table``; their values must be
        integers >= 0. Sequences of values ``(N, T, F)`` need no mention:
        they are standardised like any other channel, with rows ``(T, F)``.

    Examples
    --------
    >>> from pydnn2 import data
    >>> from pydnn2.preprocess import split_training_data
    >>> sets = split_training_data(data.load_digits(), 32, 80, 10, 10)
    >>> pre = ArrayPreprocessor(sets)
    >>> x, y = pre.get_train()
    >>> tuple(x['images'].shape[1:]), float(x['images'].mean()) < 1e-5
    ((1, 8, 8), True)
    """

    def __init__(self, sets: tuple | list, channel: str = 'images', normalize: bool = True,
                 token_channels: Iterable[str] = ()) -> None:
        if not isinstance(channel, str):
            raise DataError(f'channel must be a string; received {channel!r}')
        if isinstance(token_channels, str) or not all(
                isinstance(c, str) for c in token_channels):
            raise DataError('token_channels must be a list of channel names; received '
                            f'{token_channels!r}')
        self.channel = channel
        self.normalize = bool(normalize)
        self.token_channels = tuple(token_channels)
        # None until set_data (or from_state) attaches them; _require_data guards the uses
        self._sets: Any = None          # [(x by channel, y, files)] of train, valid, test
        self._stats: Any = None         # {channel: (mean, std)}
        self._shapes: Any = None        # {channel: row shape}
        self._applied: ChannelStats | None = None
        self._sources: dict[str, TensorSource] = {}
        self.set_data(sets, refit=True)

    # -- reading and checking the sets ------------------------------------------------------

    def _as_dict(self, x: Any, where: str,
                 shapes: dict[str, tuple] | None = None) -> dict[str, Any]:
        """``x`` as ``{channel: array}`` (rows stacked, tokens as int64), unchecked values."""
        out = dict(x) if isinstance(x, dict) else {self.channel: x}
        for name, value in out.items():
            if isinstance(value, (list, tuple)):
                value = _stack_rows(value, f'channel {name!r} of the {where}',
                                    (shapes or {}).get(name, ()))
            if not is_rows(value):         # a memmap and a view of one stay on disk
                value = np.asarray(value)
            if name in self.token_channels:
                value = self._tokens(name, np.asarray(value), where)
            elif getattr(value, 'ndim', 1) == 0:
                raise DataError(f'channel {name!r} of the {where} must be rows of data; '
                                f'received a single value')
            out[name] = value
        return out

    @staticmethod
    def _tokens(name: str, value: np.ndarray, where: str) -> np.ndarray:
        """A token channel as int64 ``(N, T)``, refusing anything else."""
        if value.dtype.kind == 'f' and value.size and np.all(value == np.round(value)):
            value = value.astype(np.int64)
        if value.dtype.kind not in 'iu' or value.ndim != 2:
            raise DataError(f'token channel {name!r} of the {where} must be integers of shape '
                            f'(N, T); received dtype {value.dtype}, shape {value.shape}')
        if value.size and value.min() < 0:
            raise DataError(f'token channel {name!r} of the {where} must hold tokens >= 0; '
                            f'received {int(value.min())}')
        return value.astype(np.int64, copy=False)

    def _check_values(self, x: dict[str, Any], where: str,
                      fit: bool = False) -> dict[str, tuple]:
        """Refuse NaN, infinite and (for float64) float32-overflowing values, chunk by
        chunk; with ``fit``, returns ``{channel: (mean, std)}`` of ``x``."""
        stats: dict[str, tuple] = {}
        for name, value in x.items():
            rows = reader(value)
            if name in self.token_channels:
                stats[name] = (np.zeros(rows.row_shape, np.float32), 1.0)
                continue
            what = f'channel {name!r} of the {where}'
            stats[name] = channel_statistics(rows, self.normalize and fit, what)
            if rows.dtype.kind == 'f' and rows.dtype.itemsize > 4:
                _check_float32_range(rows, name)
        return stats

    def set_data(self, data: tuple | list, refit: bool = False) -> None:
        """Attach new sets; with ``refit`` recompute the statistics from them.

        A loaded net keeps its statistics (they are part of the trained
        model), so by default new data is standardised the way the net
        learned. The arrays are kept, not copied.
        """
        if not isinstance(data, (tuple, list)) or len(data) != 3:
            raise DataError('ArrayPreprocessor needs the three sets returned by '
                            'split_training_data: (train, valid, test)')
        refit = refit or self._stats is None
        sets, shapes = [], None if refit else self._shapes
        for name, part in zip(SET_NAMES, data):
            if not isinstance(part, (tuple, list)) or len(part) not in (2, 3):
                raise DataError(f'the {name} set must be (x, y) or (x, y, files)')
            x = self._as_dict(part[0], f'{name} set', shapes)
            if shapes is None:
                shapes = {c: tuple(v.shape[1:]) for c, v in x.items()}
            y = as_labels(part[1], f'{name} labels')
            n = num_rows(x)
            files = np.asarray(part[2]) if len(part) == 3 else np.arange(n)
            if len(y) != n:
                raise DataError(f'the {name} set has {n} rows of x but {len(y)} labels')
            if n == 0 and name == 'train':
                raise DataError(f'the {name} set is empty; it needs at least one row')
            sets.append((x, y, files))
        missing = set(self.token_channels) - set(sets[0][0])
        if missing:
            raise DataError(f'token_channels names {sorted(missing)}, but the data has '
                            f'channels {sorted(sets[0][0])}')
        fitted = None
        for name, (x, _, _) in zip(SET_NAMES, sets):
            self._check_channels(x, f'{name} set', shapes)
            stats = self._check_values(x, f'{name} set', fit=name == 'train' and refit)
            fitted = stats if name == 'train' else fitted
        if refit:                          # every set passed: only now change anything
            self._stats, self._shapes, self._applied = fitted, shapes, None
        self._sets, self._sources = sets, {}

    def _check_channels(self, x: dict[str, Any], where: str,
                        shapes: dict[str, tuple] | None = None) -> None:
        shapes = self._shapes if shapes is None else shapes
        missing = set(shapes) - set(x)
        extra = set(x) - set(shapes)
        if missing or extra:
            raise DataError(f'the {where} has channels {sorted(x)}; expected '
                            f'{sorted(shapes)}')
        for name, v in x.items():
            if tuple(v.shape[1:]) != shapes[name]:
                raise DataError(f'channel {name!r} of the {where} has rows of shape '
                                f'{tuple(v.shape[1:])}; expected {shapes[name]}')

    # -- serving ----------------------------------------------------------------------------

    def _standardise(self, x: dict[str, torch.Tensor],
                     inplace: bool = True) -> dict[str, torch.Tensor]:
        """A batch of channels as read (tensors, on the device) standardised, as float32
        (tokens as int64); ``inplace`` when the batch is a copy of its own."""
        if self._applied is None:
            self._applied = ChannelStats(self._stats, self.token_channels)
        return self._applied.apply(x, inplace)

    def source(self, name: str, augment: bool = True) -> TensorSource:
        """The batches of set ``name`` ('train', 'valid', 'test', or 'all' for train +
        valid + test), standardised batch by batch (nothing to augment)."""
        self._require_data(f'source({name!r})')
        if name not in self._sources:
            index = (0, 1, 2) if name == 'all' else (SET_NAMES.index(name),)
            self._sources[name] = TensorSource(
                [{c: reader(v) for c, v in self._sets[i][0].items()} for i in index],
                [self._sets[i][1] for i in index],
                serve=lambda x, rows, epoch: self._standardise(x))
        return self._sources[name]

    def num_rows(self, name: str) -> int:
        """Rows in set ``name``."""
        self._require_data(f'num_rows({name!r})')
        index = (0, 1, 2) if name == 'all' else (SET_NAMES.index(name),)
        return sum(len(self._sets[i][1]) for i in index)

    def has_data(self) -> bool:
        """Whether sets are attached (a loaded net's preprocessor has none)."""
        return self._sets is not None

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{channel: row shape}``."""
        return dict(self._shapes)

    def get_raw_x(self) -> list[Any]:
        """Return ``[train, valid, test]`` inputs as given (dicts of arrays)."""
        self._require_data('get_raw_x')
        return [x if not self._single() else x[self.channel] for x, _, _ in self._sets]

    def get_raw_y(self) -> list[np.ndarray]:
        """The classes of ``[train, valid, test]``."""
        self._require_data('get_raw_y')
        return [y for _, y, _ in self._sets]

    def labels(self, name: str) -> np.ndarray:
        """The classes of set ``name`` ('all': train + valid + test), in order."""
        self._require_data(f'labels({name!r})')
        names = SET_NAMES if name == 'all' else (name,)
        return np.concatenate([self._sets[SET_NAMES.index(n)][1] for n in names])

    def get_files(self) -> list[np.ndarray]:
        """The file indices of ``[train, valid, test]``."""
        self._require_data('get_files')
        return [files for _, _, files in self._sets]

    def dtype_for(self, channel: str) -> str:
        """What ``channel`` serves: ``'int64'`` tokens or ``'float32'`` values."""
        self._known(channel)
        return 'int64' if channel in self.token_channels else 'float32'

    def max_token(self, channel: str) -> int | None:
        """The largest token of a token channel in the attached sets (None without data
        or for a value channel)."""
        self._known(channel)
        if channel not in self.token_channels or not self.has_data():
            return None
        return max((int(x[channel].max()) for x, _, _ in self._sets if x[channel].size),
                   default=None)

    def _single(self) -> bool:
        return list(self._shapes) == [self.channel]

    # -- unseen data and export ---------------------------------------------------------------

    def prepare(self, data: Any, what: str = 'data to predict') -> dict[str, np.ndarray]:
        """Unseen raw data (an array, or a dict by channel) checked and made into a
        dict of numpy arrays by channel, not yet standardised."""
        x = {name: np.asarray(v) for name, v in self._as_dict(data, what).items()}
        self._check_channels(x, what)
        for name, v in x.items():
            if name not in self.token_channels:
                channel_statistics(reader(v), False, f'channel {name!r} of the {what}')
                if v.dtype.kind == 'f' and v.dtype.itemsize > 4:
                    _check_float32_range(reader(v), name)
        return x

    def preprocess(self, data: Any) -> dict[str, torch.Tensor]:
        """Standardise unseen raw data (an array, or a dict by channel) for predict."""
        x = {n: as_tensor(v) for n, v in self.prepare(data).items()}
        return self._standardise({n: v.to(self.device) for n, v in x.items()}, inplace=False)

    def standardizer(self) -> Standardizer:
        """Each value channel's standardisation as a module; tokens pass unchanged."""
        return ChannelStats(self._stats, self.token_channels).module()

    # -- files ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Channel names, row shapes and standardisation statistics, as plain data."""
        return {'channel': self.channel, 'normalize': self.normalize,
                'token_channels': list(self.token_channels),
                'shapes': {n: list(s) for n, s in self._shapes.items()},
                'mean': {n: torch.from_numpy(np.asarray(m, np.float32))
                         for n, (m, _) in self._stats.items()},
                'std': {n: s for n, (_, s) in self._stats.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArrayPreprocessor:
        """Rebuild the preprocessor (statistics only, no data) from its state."""
        self = cls.__new__(cls)
        self.channel, self.normalize = state['channel'], state['normalize']
        self.token_channels = tuple(state.get('token_channels', ()))
        self._shapes = {n: tuple(s) for n, s in state['shapes'].items()}
        self._stats = {n: (state['mean'][n].numpy(), float(state['std'][n]))
                       for n in self._shapes}
        self._sets, self._sources, self._applied = None, {}, None
        return self


def _check_float32_range(rows: Any, name: str) -> None:
    """Refuse float64 values too large for float32 (served as float32)."""
    largest = 0.0
    for chunk in rows.chunks(chunk_rows(int(np.prod(rows.row_shape, dtype=np.int64)) * 8)):
        if chunk.size:
            largest = max(largest, float(np.max(np.abs(chunk))))
    if largest > FLOAT32_MAX:
        raise DataError(f'channel {name!r} holds values too large for float32 (the largest is '
                        f'{largest:.3g}; float32 reaches {FLOAT32_MAX:.3g}); rescale them')
