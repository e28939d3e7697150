"""Splitting data into sets and serving it to a net, channel by channel.

A *preprocessor* owns the training, validation and test sets and hands the
net a dict of channels (``{'images': tensor, 'shapes': tensor}``) for each
of them, standardised with statistics of the training set alone. This
module defines the protocol (:class:`Preprocessor`), the splitter
(:func:`split_training_data`) and the in-memory preprocessor for arrays
(:class:`ArrayPreprocessor`).

Examples
--------
>>> import numpy as np
>>> from pydnn2 import data, preprocess
>>> sets = preprocess.split_training_data(data.load_digits(), 32, 80, 10, 10)
>>> pre = preprocess.ArrayPreprocessor(sets)
>>> pre.shape_for('images')
(1, 8, 8)
"""

import numbers

import numpy as np
import torch

from .errors import DataError

SET_NAMES = ('train', 'valid', 'test')

_REGISTRY = {}


def preprocessor_class(name):
    """Return the registered :class:`Preprocessor` subclass called ``name``.

    Loading a saved net rebuilds its preprocessor through this registry, so
    only classes that are already imported can be named by a file: a file
    can never make pydnn2 import or run anything.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(
            f'unknown preprocessor class {name!r}; import the module that defines it '
            f'before loading. Known: {sorted(_REGISTRY)}') from None


class Preprocessor:
    """The protocol between data and a net (pydnn's preprocessor protocol).

    A preprocessor serves three sets (train, valid, test) as
    ``(x, y)`` pairs, where ``x`` is a dict ``{channel: tensor (N, ...)}`` of
    float32 tensors and ``y`` an int64 tensor of classes. Subclasses
    implement the ``get_*`` methods, :meth:`preprocess`, :meth:`set_data`,
    :meth:`state_dict` and :meth:`from_state`; they are registered by class
    name so that saved nets can rebuild them.

    Attributes
    ----------
    device : torch.device
        Where the returned tensors live; the net sets it with :meth:`to`.
    """

    device = torch.device('cpu')

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    @property
    def channels(self):
        """The names of the channels this preprocessor serves."""
        return tuple(self._shapes)

    def shape_for(self, channel):
        """Return the shape of one row of ``channel`` (without the batch axis)."""
        try:
            return tuple(self._shapes[channel])
        except KeyError:
            raise DataError(
                f'unknown channel {channel!r}; this {type(self).__name__} provides '
                f'{list(self._shapes)}') from None

    def to(self, device):
        """Serve tensors on ``device`` from now on; returns ``self``."""
        self.device = torch.device(device)
        return self

    def get_train(self):
        """Return this epoch's training set ``(x, y)`` (possibly augmented)."""
        raise NotImplementedError(f'{type(self).__name__}.get_train')

    def get_all_train(self):
        """Return train + valid + test as one training set, for final epochs."""
        raise NotImplementedError(f'{type(self).__name__}.get_all_train')

    def get_valid(self):
        """Return the validation set ``(x, y)``."""
        raise NotImplementedError(f'{type(self).__name__}.get_valid')

    def get_test(self):
        """Return the test set ``(x, y)``; ``x`` may hold zero rows."""
        raise NotImplementedError(f'{type(self).__name__}.get_test')

    def get_raw_x(self):
        """Return the raw (unprocessed) inputs of ``[train, valid, test]``."""
        raise NotImplementedError(f'{type(self).__name__}.get_raw_x')

    def get_raw_y(self):
        """Return the classes of ``[train, valid, test]`` as int64 arrays.

        The default reads ``self._sets``, a list of ``(x, y, files)``
        triples, as the built-in preprocessors keep their sets.
        """
        self._require_data('get_raw_y')
        return [y for _, y, _ in self._sets]

    def get_files(self):
        """Return the file indices of ``[train, valid, test]`` (from ``self._sets``)."""
        self._require_data('get_files')
        return [files for _, _, files in self._sets]

    def preprocess(self, data):
        """Turn raw inputs into the channel dict a net predicts from."""
        raise NotImplementedError(f'{type(self).__name__}.preprocess')

    def set_data(self, data):
        """Attach new sets (as returned by :func:`split_training_data`)."""
        raise NotImplementedError(f'{type(self).__name__}.set_data')

    def state_dict(self):
        """Return the plain state needed to preprocess unseen data."""
        raise NotImplementedError(f'{type(self).__name__}.state_dict')

    @classmethod
    def from_state(cls, state):
        """Rebuild a preprocessor (without data) from :meth:`state_dict`."""
        raise NotImplementedError(f'{cls.__name__}.from_state')

    def get_state(self):
        """The mutable training-time state (random generators, augmentation
        schedule) as plain data, for checkpoints; none by default."""
        return {}

    def set_state(self, state):
        """Restore :meth:`get_state`'s state, so training resumes exactly."""

    def has_data(self):
        """Whether sets are attached (a loaded net's preprocessor has none)."""
        return getattr(self, '_sets', None) is not None

    def _require_data(self, what):
        if not self.has_data():
            raise DataError(
                f'{type(self).__name__}.{what} needs data, but none is attached '
                f'(a loaded net keeps only its preprocessing statistics); '
                f'call set_data(split_training_data(...)) first')


def num_rows(x):
    """Number of rows in ``x``: an array, a list of arrays, or a dict of either."""
    if isinstance(x, dict):
        if not x:
            raise DataError('the input dict holds no channels')
        counts = {name: num_rows(v) for name, v in x.items()}
        if len(set(counts.values())) > 1:
            raise DataError(f'channels hold different numbers of rows: {counts}')
        return next(iter(counts.values()))
    return len(x)


def take_rows(x, index):
    """Rows ``index`` of ``x`` (array, list of arrays, or dict of either)."""
    if isinstance(x, dict):
        return {name: take_rows(v, index) for name, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [x[i] for i in index]
    return np.asarray(x)[index]


def _check_percent(name, value):
    if not isinstance(value, numbers.Real) or not 0 <= value <= 100:
        raise DataError(f'split_training_data: {name} must be a percentage in [0, 100]; '
                        f'received {value!r}')


def split_training_data(data, batch_size, train_per, valid_per, test_per, rng=None,
                        shuffle=True):
    """Shuffle labelled data and split it into training, validation and test sets.

    Parameters
    ----------
    data : tuple
        ``(x, classes)`` or ``(x, classes, file_indices)``. ``x`` is an array
        ``(N, ...)``, a list of N arrays (images of different sizes), or a
        dict of those by channel name.
    batch_size : int
        The training batch size; the training set must hold at least one
        full batch.
    train_per, valid_per, test_per : float
        Percentages of the rows for each set; they may add up to less than
        100 to use a sample of the data. ``test_per`` may be 0.
    rng : numpy.random.RandomState or numpy.random.Generator, optional
        Source of the shuffle; by default a fixed seed, so the split is the
        same on every run.
    shuffle : bool
        False keeps the rows in their given order.

    Returns
    -------
    tuple
        ``((x, y, files) for train, valid, test)``, with ``y`` and ``files``
        int64 arrays.
    """
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise DataError('split_training_data needs data as (x, classes) or '
                        f'(x, classes, file_indices); received {type(data).__name__}'
                        + (f' of length {len(data)}' if isinstance(data, (tuple, list)) else ''))
    x, classes = data[0], np.asarray(data[1])
    n = num_rows(x)
    files = np.asarray(data[2]) if len(data) == 3 else np.arange(n)
    if len(classes) != n or len(files) != n:
        raise DataError(f'split_training_data: x has {n} rows but classes has {len(classes)} '
                        f'and file_indices {len(files)}')
    classes = as_labels(classes, 'classes')
    for name, value in (('train_per', train_per), ('valid_per', valid_per),
                        ('test_per', test_per)):
        _check_percent(name, value)
    if train_per + valid_per + test_per > 100 + 1e-9:
        raise DataError('split_training_data: train_per + valid_per + test_per must not exceed '
                        f'100; received {train_per} + {valid_per} + {test_per}')
    check_batch_size(batch_size)
    order = np.arange(n)
    if shuffle:
        rng = np.random.RandomState(0) if rng is None else rng
        order = rng.permutation(n)
    n_train, n_valid = int(n * train_per / 100), int(n * valid_per / 100)
    n_test = int(n * test_per / 100)
    bounds = np.cumsum([0, n_train, n_valid, n_test])
    sets = []
    for name, start, stop in zip(SET_NAMES, bounds[:-1], bounds[1:]):
        index = order[start:stop]
        if name != 'test' and len(index) == 0:
            raise DataError(f'split_training_data: the {name} set is empty ({n} rows at '
                            f'{dict(train=train_per, valid=valid_per)[name]}%); '
                            'raise its percentage or supply more data')
        sets.append((take_rows(x, index), classes[index], files[index].astype(np.int64)))
    if len(sets[0][1]) < batch_size:
        raise DataError(f'batch_size {batch_size} is larger than the training set '
                        f'({len(sets[0][1])} rows); use a smaller batch_size')
    return tuple(sets)


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


def check_batch_size(batch_size):
    """Raise :class:`DataError` unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise DataError(f'batch_size must be a positive integer; received {batch_size!r}')


def as_labels(y, what='labels'):
    """Return ``y`` as an int64 array, refusing non-integer or negative values."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f'{what} must be a 1-D array of class indices; received shape {y.shape}')
    if y.dtype.kind == 'f' and len(y) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in 'iu':
        raise DataError(f'{what} must be integers (class indices); received dtype {y.dtype}')
    if len(y) and y.min() < 0:
        raise DataError(f'{what} must be class indices >= 0; received {int(y.min())}')
    return y.astype(np.int64)


def check_finite(name, array):
    """Raise :class:`DataError` if ``array`` holds NaN or infinite values."""
    array = np.asarray(array)
    if array.dtype.kind not in 'biuf':
        raise DataError(f'{name} must be numeric; received dtype {array.dtype}')
    if array.dtype.kind == 'f':
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f'{name} holds {int(bad.sum())} NaN or infinite values '
                            f'(first in row {row}); clean or impute them before training')


class ArrayPreprocessor(Preprocessor):
    """In-memory preprocessor over array sets, standardised per channel.

    Each channel is centred on the training set's mean row and divided by
    the training set's standard deviation (one number per channel), so no
    statistic ever looks at validation or test data.

    Parameters
    ----------
    sets : tuple
        The output of :func:`split_training_data`.
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
            if n == 0 and name != 'test':
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
            t = np.subtract(v, mean, dtype=np.float32)   # one float32 pass, then in place
            t /= np.float32(std)
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

    def preprocess(self, data):
        """Standardise unseen raw data (an array, or a dict by channel) for predict."""
        x = self._as_dict(data, 'data to predict')
        self._check_channels(x, 'data to predict')
        return self._transform(x)

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


# Re-exports, so that every preprocessing name is found under pydnn2.preprocess.
# pydnn2.augment imports this module: when it is the one being imported first,
# its names are served on demand by __getattr__ below instead.
import sys as _sys  # noqa: E402

from .resize import *  # noqa: E402,F401,F403

_AUGMENT_NAMES = ('Augmentation', 'ImagePreprocessor', 'Canonicalizer', 'Rotator360',
                  'Rotator360PlusGeometry')
if 'pydnn2.augment' not in _sys.modules:
    from .augment import (Augmentation, Canonicalizer, ImagePreprocessor,  # noqa: E402,F401
                          Rotator360, Rotator360PlusGeometry)


def __getattr__(name):
    """Serve the image preprocessors of :mod:`pydnn2.augment` when imported from there."""
    if name in _AUGMENT_NAMES:
        from . import augment
        return getattr(augment, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
