"""Reading rows of an array without holding a copy of it: in memory, or mapped from disk.

A preprocessor keeps the arrays it was given and reads the rows of each batch
when the batch is made, so a set costs its own memory once, never a
standardised copy beside it. Three readers share one interface
(``len``, ``row_shape``, ``dtype``, ``nbytes``, :meth:`~ArrayRows.take` a batch of
rows, :meth:`~ArrayRows.chunks` in order):

- :class:`ArrayRows`: an array (or tensor) in memory; a batch is one
  ``index_select``.
- :class:`MappedRows`: a :class:`numpy.memmap` whose rows are read from its
  file with ``pread``, never through a mapping: the pages stay in the
  system's file cache, and the process's resident memory stays bounded
  however large the file.
- :class:`RowView`: a selection of another reader's rows (what
  :func:`~pydnn2.preprocess.split_training_data` returns for a memmap instead of
  reading it), read through the selection.

:func:`reader` picks one for an array. The statistics a preprocessor fits are
computed chunk by chunk over :meth:`~ArrayRows.chunks` (:func:`channel_statistics`).

>>> rows = reader(np.arange(12, dtype=np.float32).reshape(6, 2))
>>> rows.take(np.array([4, 1])).tolist()
[[8.0, 9.0], [2.0, 3.0]]
>>> [len(c) for c in rows.chunks(4)]
[4, 2]
"""

import mmap
import os
import warnings

import numpy as np
import torch

from ..errors import DataError

#: Bytes per chunk when a whole array is read in order (statistics, checks).
CHUNK_BYTES = 32 * 2 ** 20


def chunk_rows(row_bytes, budget=CHUNK_BYTES):
    """Rows of ``row_bytes`` each that make a chunk of about ``budget`` bytes (>= 1)."""
    return max(1, budget // max(1, row_bytes))


def as_tensor(array):
    """A numpy array as a tensor sharing its memory (read-only arrays too: pydnn2
    never writes through it)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return torch.from_numpy(np.ascontiguousarray(array))


class ArrayRows:
    """The rows of an array in memory, read without copying the array.

    Parameters
    ----------
    array : numpy.ndarray or torch.Tensor
        ``(N, ...)``; kept as it is (never written to).
    """

    def __init__(self, array):
        self.array = array
        self._tensor = None

    def __len__(self):
        return len(self.array)

    @property
    def row_shape(self):
        """The shape of one row."""
        return tuple(self.array.shape[1:])

    @property
    def dtype(self):
        """The numpy dtype of the rows."""
        if isinstance(self.array, torch.Tensor):
            return torch.empty(0, dtype=self.array.dtype).numpy().dtype
        return self.array.dtype

    @property
    def nbytes(self):
        """Bytes the rows take."""
        return len(self) * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def tensor(self):
        """The whole array as a tensor sharing its memory (made once)."""
        if self._tensor is None:
            array = self.array
            self._tensor = array if isinstance(array, torch.Tensor) else as_tensor(array)
        return self._tensor

    def take(self, index):
        """Rows ``index`` (an int64 array or tensor) as a new tensor."""
        index = torch.as_tensor(index, dtype=torch.long)
        return self.tensor().index_select(0, index)          # (b, ...)

    def chunks(self, rows):
        """The rows in order, ``rows`` at a time, as numpy arrays (views where possible)."""
        array = self.array.numpy() if isinstance(self.array, torch.Tensor) else self.array
        for start in range(0, len(self), rows):
            yield np.asarray(array[start:start + rows])

    def row(self, i):
        """Row ``i`` as a numpy array."""
        return np.asarray(self.array[i])


class MappedRows(ArrayRows):
    """The rows of a :class:`numpy.memmap`, read from its file with ``pread``.

    Rows are read into memory of the batch's own, never through a mapping: a
    mapped file's pages count in the process's resident memory once touched
    (and a kernel with large page-cache folios maps a megabyte or more for
    each row touched at random), while pages read with ``pread`` stay in the
    system's file cache alone. So the process holds a batch, however large
    the file.

    Parameters
    ----------
    array : numpy.memmap
        ``(N, ...)`` in C order, as ``numpy.memmap`` or ``numpy.load(mmap_mode=...)``
        makes it.
    """

    def __init__(self, array):
        super().__init__(array)
        self.filename, self.offset = array.filename, file_offset(array)
        self._fd = None

    def __getstate__(self):                     # a DataLoader worker opens the file itself
        state = dict(self.__dict__)
        state['_fd'] = state['_tensor'] = None
        return state

    def __del__(self):
        if getattr(self, '_fd', None) is not None:
            os.close(self._fd)

    def _file(self):
        if self._fd is None:
            self._fd = os.open(self.filename, os.O_RDONLY)
        return self._fd

    @property
    def _row_bytes(self):
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def take(self, index):
        """Rows ``index`` read from the file, as a new tensor."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index),) + self.row_shape, self.dtype)
        flat, size, fd = out.reshape(len(index), -1).view(np.uint8), self._row_bytes, self._file()
        for i, row in enumerate(index.tolist()):
            os.preadv(fd, [flat[i]], self.offset + row * size)
        return torch.from_numpy(out)

    def chunks(self, rows):
        """The rows in order, ``rows`` at a time, each read from the file."""
        size, fd = self._row_bytes, self._file()
        for start in range(0, len(self), rows):
            count = min(rows, len(self) - start)
            out = np.empty((count,) + self.row_shape, self.dtype)
            view, done = out.reshape(-1).view(np.uint8), 0
            while done < count * size:          # (a read may return less than asked)
                done += os.preadv(fd, [view[done:]], self.offset + start * size + done)
            yield out

    def row(self, i):
        """Row ``i``, read from the file."""
        return self.take(np.array([i]))[0].numpy()


class RowView:
    """The rows ``index`` of another reader, read through the selection (a set that
    :func:`~pydnn2.preprocess.split_training_data` cut from a memmap).

    It behaves as an array of those rows for ``len``, ``shape``, ``dtype``,
    indexing and ``numpy.asarray`` (which reads them all).
    """

    def __init__(self, base, index):
        self.base = base if isinstance(base, ArrayRows) else reader(base)
        self.index = np.asarray(index, dtype=np.int64)

    def __len__(self):
        return len(self.index)

    @property
    def row_shape(self):
        """The shape of one row."""
        return self.base.row_shape

    @property
    def shape(self):
        """``(rows, *row_shape)``, as an array's."""
        return (len(self),) + self.row_shape

    @property
    def ndim(self):
        """The number of axes, as an array's."""
        return len(self.shape)

    @property
    def dtype(self):
        """The numpy dtype of the rows."""
        return self.base.dtype

    @property
    def nbytes(self):
        """Bytes the selected rows take."""
        return len(self) * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def take(self, index):
        """Selected rows ``index``, as a new tensor."""
        return self.base.take(self.index[np.asarray(index, dtype=np.int64)])

    def chunks(self, rows):
        """The selected rows in order, ``rows`` at a time."""
        for start in range(0, len(self), rows):
            yield self.take(np.arange(start, min(len(self), start + rows))).numpy()

    def row(self, i):
        """Selected row ``i``."""
        return self.base.row(int(self.index[i]))

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.row(key)
        return RowView(self.base, self.index[key])

    def __array__(self, dtype=None, copy=None):
        array = self.take(np.arange(len(self))).numpy()
        return array if dtype is None else array.astype(dtype)

    def __repr__(self):
        return f'RowView({len(self)} rows of {self.row_shape} {self.dtype})'


def is_rows(x):
    """Whether ``x`` is read lazily (a memmap or a :class:`RowView`)."""
    return isinstance(x, (np.memmap, RowView))


def file_offset(array):
    """Where a C-ordered :class:`numpy.memmap` (a slice of one too: numpy keeps the
    parent's ``offset`` on a slice) starts in its file, in bytes; None when it cannot
    be told (not mapped from a file, or not in C order)."""
    mapping = array
    while isinstance(mapping, np.ndarray):
        mapping = mapping.base
    if not isinstance(mapping, mmap.mmap) or not array.flags.c_contiguous:
        return None
    start = np.frombuffer(mapping, np.uint8).__array_interface__['data'][0]
    mapped_from = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY
    return mapped_from + array.__array_interface__['data'][0] - start


def reader(array):
    """The reader for ``array``: :class:`MappedRows` for a C-ordered memmap of a file,
    the view itself for a :class:`RowView`, :class:`ArrayRows` otherwise (a memmap
    sliced out of C order is read through its mapping)."""
    if isinstance(array, (ArrayRows, RowView)):
        return array
    if (isinstance(array, np.memmap) and getattr(array, 'filename', None)
            and file_offset(array) is not None):
        return MappedRows(array)
    return ArrayRows(array)


def channel_statistics(rows, normalize=True, where='the training set'):
    """One pass over a channel's rows, chunk by chunk: refuse NaN and infinite values
    (a :class:`~pydnn2.errors.DataError` naming how many and the first bad row) and,
    with ``normalize``, return the mean row (float32) and the standard deviation of
    all values around it (a float; 1.0 for constant data), as
    :class:`~pydnn2.preprocess.ArrayPreprocessor` standardises. Without
    ``normalize``: zeros and 1.0."""
    n, shape = len(rows), rows.row_shape
    size = chunk_rows(int(np.prod(shape, dtype=np.int64)) * 8)
    total = np.zeros(shape, np.float64)
    bad, first, done = 0, None, 0
    for chunk in rows.chunks(size):
        count, row = _non_finite(chunk, where)
        if count and first is None:
            first = done + row
        bad += count
        if normalize and not bad:
            total += chunk.sum(axis=0, dtype=np.float64)
        done += len(chunk)
    if bad:
        raise DataError(f'{where} holds {bad} NaN or infinite values (first in row {first}); '
                        'clean or impute them before training')
    if not normalize or n == 0:
        return np.zeros(shape, np.float32), 1.0
    mean = total / n
    squares = 0.0
    for chunk in rows.chunks(size):
        squares += float(np.square(chunk.astype(np.float64) - mean).sum())
    std = float(np.sqrt(squares / (n * max(1, mean.size))))
    return mean.astype(np.float32), std if std > 0 else 1.0


def _non_finite(chunk, where):
    """``(count, first row)`` of NaN and infinite values in a chunk of rows; refuses
    non-numeric dtypes."""
    if chunk.dtype.kind not in 'biuf':
        raise DataError(f'{where} must be numeric; received dtype {chunk.dtype}')
    if chunk.dtype.kind != 'f':
        return 0, None
    bad = ~np.isfinite(chunk)
    count = int(bad.sum())
    return count, (int(np.argwhere(bad)[0][0]) if count else None)
