"""Splitting labelled data into training, validation and test sets, and the checks
of labels and values that every preprocessor uses (an example is in
:func:`split_training_data`'s docstring).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import checks
from ..data.imagefiles import ImageFiles
from ..errors import ConfigError, DataError
from .rows import RowView

SET_NAMES = ('train', 'valid', 'test')


def num_rows(x: Any) -> int:
    """Number of rows in ``x``: an array, a list of arrays, or a dict of either."""
    if isinstance(x, dict):
        if not x:
            raise DataError('the input dict holds no channels')
        counts = {name: num_rows(v) for name, v in x.items()}
        if len(set(counts.values())) > 1:
            raise DataError(f'channels hold different numbers of rows: {counts}')
        return next(iter(counts.values()))
    if isinstance(x, (str, bytes)):
        raise DataError(f'expected rows of data (an array, or a list of rows); received the '
                        f'{type(x).__name__} {x[:40]!r}')
    try:
        return len(x)
    except TypeError:                    # a number, None, a 0-d array
        raise DataError(f'expected rows of data (an array, or a list of rows); received '
                        f'{type(x).__name__} {str(x)[:40]}') from None


def take_rows(x: Any, index: Any) -> Any:
    """Rows ``index`` of ``x`` (array, list of arrays, or dict of either): a copy,
    except for a ``numpy.memmap`` (or a view of one), whose rows are selected
    without reading them (a :class:`~pydnn2.preprocess.rows.RowView`), and for
    :class:`~pydnn2.data.ImageFiles` (a streamed folder), selected unread."""
    if isinstance(x, dict):
        return {name: take_rows(v, index) for name, v in x.items()}
    if isinstance(x, ImageFiles):
        return x.take(index)
    if isinstance(x, (list, tuple)):
        return [x[i] for i in index]
    if isinstance(x, RowView):
        return x[index]
    if isinstance(x, np.memmap):            # cut lazily: read batch by batch, never whole
        return RowView(x, index)
    return np.asarray(x)[index]


def _check_percent(name: str, value: float) -> None:
    checks.number(value, name, at_least=0, at_most=100, expected='a percentage in [0, 100]',
                  where='split_training_data')


#: The seed of pydnn's split, so that the same percentages always give the same sets.
SPLIT_SEED = 24680


def set_sizes(n: int, batch_size: int, train_per: float, valid_per: float,
              test_per: float) -> tuple[int, int, int]:
    """pydnn's rows per set: each percentage of ``n`` rounded down to whole batches,
    then the whole batches left over added to the training set.

    >>> set_sizes(1797, 32, 60, 20, 20)
    (1088, 352, 352)
    """
    def whole_batches(per: float) -> int:
        rows = int(n * per / 100.0)
        return rows - rows % batch_size

    train, valid, test = (whole_batches(p) for p in (train_per, valid_per, test_per))
    train += (n - train - valid - test) // batch_size * batch_size
    return train, valid, test


def shuffled_order(n: int, rng: np.random.RandomState | np.random.Generator) -> np.ndarray:
    """pydnn's shuffle of ``n`` rows: for each row in turn, swap it with the row
    ``rng.randint(n - 1)`` draws. Returns the new order of the row indices."""
    draw = rng.integers if isinstance(rng, np.random.Generator) else rng.randint
    order = np.arange(n)
    if n < 2:
        return order
    for i, j in enumerate(draw(n - 1, size=n)):
        order[i], order[j] = order[j], order[i]
    return order


def _check_split(n: int, batch_size: int, percents: tuple[float, ...],
                 sizes: tuple[int, ...]) -> None:
    """Refuse an empty training set; warn of a validation or test set that its
    percentage asked for but the rounding to whole batches left empty."""
    for name, per, size in zip(SET_NAMES, percents, sizes):
        if size or not (per > 0 or name == 'train'):
            continue
        message = (f'the {name} set is empty: {per}% of {n} rows rounded down to whole '
                   f'batches of {batch_size} is 0 rows; raise its percentage, supply more data '
                   'or use a smaller batch_size')
        if name == 'train':
            raise DataError(f'split_training_data: {message}')
        warnings.warn(f'{message} (training goes on without it)', stacklevel=3)


def split_training_data(data: tuple | list, batch_size: int, train_per: float,
                        valid_per: float, test_per: float,
                        rng: np.random.RandomState | np.random.Generator | None = None,
                        shuffle: bool = True) -> tuple[tuple[Any, np.ndarray, np.ndarray], ...]:
    """Shuffle labelled data and split it into training, validation and test sets
    (pydnn's split).

    The percentages must add up to 100. Each set gets its percentage of the
    rows rounded down to whole batches, and the whole batches left over go to
    the training set (the last few rows that make no batch are left out). The
    shuffle is pydnn's, from a fixed seed, so the same data and percentages
    always give the same sets. ``valid_per`` and ``test_per`` may be 0 (and a
    set its percentage leaves empty is empty, with a warning): a net trained
    without a validation set keeps its best net by the training loss, and
    nothing is evaluated on an empty set.

    Parameters
    ----------
    data : tuple
        ``(x, classes)`` or ``(x, classes, file_indices)``. ``x`` is an array
        ``(N, ...)``, a list of N arrays (images of different sizes), or a
        dict of those by channel name.
    batch_size : int
        The training batch size.
    train_per, valid_per, test_per : float
        Percentages of the rows for each set, adding up to 100.
    rng : numpy.random.RandomState or numpy.random.Generator, optional
        Source of the shuffle; by default ``RandomState(24680)``, as in pydnn.
    shuffle : bool
        False keeps the rows in their given order.

    Returns
    -------
    tuple
        ``((x, y, files) for train, valid, test)``, with ``y`` and ``files``
        int64 arrays. The data given is not changed.

    Examples
    --------
    >>> from pydnn2 import data
    >>> train, valid, test = split_training_data(data.load_digits(), 32, 80, 10, 10)
    >>> len(train[1]), len(valid[1]), len(test[1])
    (1472, 160, 160)
    """
    x, classes, files = _labelled(data)
    percents = (train_per, valid_per, test_per)
    for name, value in zip(('train_per', 'valid_per', 'test_per'), percents):
        _check_percent(name, value)
    if abs(sum(percents) - 100) > 1e-9:
        raise ConfigError('split_training_data: train_per + valid_per + test_per must add up '
                          f'to 100; received {train_per} + {valid_per} + {test_per}')
    checks.batch_size(batch_size)
    n = len(classes)
    sizes = set_sizes(n, batch_size, *percents)
    _check_split(n, batch_size, percents, sizes)
    order = np.arange(n)
    if shuffle:
        order = shuffled_order(n, np.random.RandomState(SPLIT_SEED) if rng is None else rng)
    bounds = np.cumsum((0,) + sizes)
    return tuple((take_rows(x, order[a:b]), classes[order[a:b]], files[order[a:b]])
                 for a, b in zip(bounds[:-1], bounds[1:]))


def _labelled(data: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(x, classes, files)`` of labelled data, checked."""
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
    return x, as_labels(classes, 'classes'), files.astype(np.int64)


def as_labels(y: Any, what: str = 'labels') -> np.ndarray:
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


def check_finite(name: str, array: Any) -> None:
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
