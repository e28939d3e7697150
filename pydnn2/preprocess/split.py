"""Splitting labelled data into training, validation and test sets, and the checks
of labels and values that every preprocessor uses.

Examples
--------
>>> from pydnn2 import data
>>> train, valid, test = split_training_data(data.load_digits(), 32, 80, 10, 10)
>>> len(train[1]), len(valid[1]), len(test[1])
(1437, 179, 179)
"""

import numpy as np

from .. import checks
from ..errors import ConfigError, DataError

SET_NAMES = ('train', 'valid', 'test')


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
    checks.number(value, name, at_least=0, at_most=100, expected='a percentage in [0, 100]',
                  where='split_training_data')


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
        raise ConfigError('split_training_data: train_per + valid_per + test_per must not exceed '
                        f'100; received {train_per} + {valid_per} + {test_per}')
    checks.batch_size(batch_size)
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
