"""The in-memory preprocessor for arrays: each channel standardised with training
statistics (see :class:`ArrayPreprocessor`)."""

import numpy as np
import torch

from ..errors import DataError
from .base import Preprocessor
from .split import SET_NAMES, as_labels, check_finite, num_rows


def _stack_rows(rows, where, row_shape=()):
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
    """In-memory preprocessor over array sets, standardised per channel.

    Each channel is centred on the training set's mean row and divided by
    the training set's standard deviation (one number per channel), so no
    statistic ever looks at validation or test data.

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

    def __init__(self, sets, channel='images', normalize=True, token_channels=()):
        if not isinstance(channel, str):
            raise DataError(f'channel must be a string; received {channel!r}')
        if isinstance(token_channels, str) or not all(
                isinstance(c, str) for c in token_channels):
            raise DataError('token_channels must be a list of channel names; received '
                            f'{token_channels!r}')
        self.channel = channel
        self.normalize = bool(normalize)
        self.token_channels = tuple(token_channels)
        self._sets = None
        self._stats = None
        self.set_data(sets, refit=True)

    def _as_dict(self, x, where, shapes=None):
        if isinstance(x, dict):
            out = dict(x)
        else:
            out = {self.channel: x}
        for name, value in out.items():
            if isinstance(value, (list, tuple)):
                value = _stack_rows(value, f'channel {name!r} of the {where}',
                                    (shapes or {}).get(name, ()))
            value = np.asarray(value)
            check_finite(f'channel {name!r} of the {where}', value)
            if name in self.token_channels:
                value = self._tokens(name, value, where)
            out[name] = value
        return out

    @staticmethod
    def _tokens(name, value, where):
        """A token channel as int64 ``(N, T)``, refusing anything else."""
        if value.dtype.kind == 'f' and value.size and np.all(value == np.round(value)):
            value = value.astype(np.int64)
        if value.dtype.kind not in 'iu' or value.ndim != 2:
            raise DataError(f'token channel {name!r} of the {where} must be integers of shape '
                            f'(N, T); received dtype {value.dtype}, shape {value.shape}')
        if value.size and value.min() < 0:
            raise DataError(f'token channel {name!r} of the {where} must hold tokens >= 0; '
                            f'received {int(value.min())}')
        return value.astype(np.int64)

    def set_data(self, data, refit=False):
        """Attach new sets; with ``refit`` recompute the statistics from them.

        A loaded net keeps its statistics (they are part of the trained
        model), so by default new data is standardised the way the net
        learned.
        """
        if not isinstance(data, (tuple, list)) or len(data) != 3:
            raise DataError('ArrayPreprocessor needs the three sets returned by '
                            'split_training_data: (train, valid, test)')
        sets, shapes = [], None if refit or self._stats is None else self._shapes
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
        for name, (x, _, _) in zip(SET_NAMES, sets):
            self._check_channels(x, f'{name} set', shapes)
        if refit or self._stats is None:
            self._fit(sets[0][0])
        self._sets = sets
        self._cache = {}

    def _fit(self, x):
        missing = set(self.token_channels) - set(x)
        if missing:
            raise DataError(f'token_channels names {sorted(missing)}, but the data has '
                            f'channels {sorted(x)}')
        self._shapes = {name: tuple(v.shape[1:]) for name, v in x.items()}
        self._stats = {}
        for name, v in x.items():
            if name in self.token_channels:      # served as they are
                self._stats[name] = (np.zeros(v.shape[1:], np.float32), 1.0)
                continue
            v = v.astype(np.float64)
            mean = v.mean(axis=0) if self.normalize else np.zeros(v.shape[1:])
            std = float((v - mean).std()) if self.normalize else 1.0
            self._stats[name] = (mean.astype(np.float32), std if std > 0 else 1.0)

    def _check_channels(self, x, where, shapes=None):
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

    def _transform(self, x):
        out = {}
        for name, v in x.items():
            if name in self.token_channels:
                out[name] = torch.from_numpy(v).to(self.device)   # (N, T) int64
                continue
            mean, std = self._stats[name]
            with np.errstate(over='ignore', invalid='ignore'):
                t = np.subtract(v, mean, dtype=np.float32)   # one float32 pass, then in place
                t /= np.float32(std)
            if not np.isfinite(t).all():
                raise DataError(f'channel {name!r} holds values too large for float32 (the '
                                f'largest is {float(np.max(np.abs(v))):.3g}; float32 reaches '
                                f'{float(np.finfo(np.float32).max):.3g}); rescale them')
            t = torch.from_numpy(t)
            out[name] = t.to(self.device)
        return out

    def _served(self, key, index):
        if key not in self._cache:
            self._require_data(f'get_{key}')
            x = {}
            ys = []
            for i in index:
                part, y, _ = self._sets[i]
                x = {n: np.concatenate([x[n], v]) if n in x else v for n, v in part.items()}
                ys.append(y)
            self._cache[key] = (self._transform(x),
                                torch.from_numpy(np.concatenate(ys)).to(self.device))
        return self._cache[key]

    def to(self, device):
        """Serve tensors on ``device``; cached sets move once."""
        super().to(device)
        self._cache = {k: ({n: t.to(self.device) for n, t in x.items()}, y.to(self.device))
                       for k, (x, y) in getattr(self, '_cache', {}).items()}
        return self

    def get_train(self):
        """Return the standardised training set (the same tensors every epoch)."""
        return self._served('train', (0,))

    def get_all_train(self):
        """Return train + valid + test standardised as one set."""
        return self._served('all', (0, 1, 2))

    def get_valid(self):
        """Return the standardised validation set."""
        return self._served('valid', (1,))

    def get_test(self):
        """Return the standardised test set (possibly empty)."""
        return self._served('test', (2,))

    def get_raw_x(self):
        """Return ``[train, valid, test]`` inputs as given (dicts of arrays)."""
        self._require_data('get_raw_x')
        return [x if not self._single() else x[self.channel] for x, _, _ in self._sets]

    def dtype_for(self, channel):
        """What ``channel`` serves: ``'int64'`` tokens or ``'float32'`` values."""
        self.shape_for(channel)
        return 'int64' if channel in self.token_channels else 'float32'

    def max_token(self, channel):
        """The largest token of a token channel in the attached sets (None
        without data or for a value channel)."""
        if channel not in self.token_channels or not self.has_data():
            return None
        return max((int(x[channel].max()) for x, _, _ in self._sets if x[channel].size),
                   default=None)

    def _single(self):
        return list(self._shapes) == [self.channel]

    def prepare(self, data, what='data to predict'):
        """Unseen raw data (an array, or a dict by channel) checked and made into a
        dict of numpy arrays by channel, not yet standardised."""
        x = self._as_dict(data, what)
        self._check_channels(x, what)
        return x

    def preprocess(self, data):
        """Standardise unseen raw data (an array, or a dict by channel) for predict."""
        return self._transform(self.prepare(data))

    def state_dict(self):
        """Channel names, row shapes and standardisation statistics, as plain data."""
        return {'channel': self.channel, 'normalize': self.normalize,
                'token_channels': list(self.token_channels),
                'shapes': {n: list(s) for n, s in self._shapes.items()},
                'mean': {n: torch.from_numpy(m) for n, (m, _) in self._stats.items()},
                'std': {n: s for n, (_, s) in self._stats.items()}}

    @classmethod
    def from_state(cls, state):
        """Rebuild the preprocessor (statistics only, no data) from its state."""
        self = cls.__new__(cls)
        self.channel, self.normalize = state['channel'], state['normalize']
        self.token_channels = tuple(state.get('token_channels', ()))
        self._shapes = {n: tuple(s) for n, s in state['shapes'].items()}
        self._stats = {n: (state['mean'][n].numpy(), float(state['std'][n]))
                       for n in self._shapes}
        self._sets, self._cache = None, {}
        return self
