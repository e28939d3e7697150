"""Image files not yet read: what a streamed image folder's ``build()`` returns.

:class:`ImageFiles` stands where a list of decoded images would: it has a
length, and indexing it by a number reads that one image (a slice or an
array of positions gives a selection, read nothing). The image preprocessors
given sets of them (:func:`pydnn2.preprocess.split_training_data` cuts them
lazily) decode and resize each image in ``DataLoader`` workers when a batch
needs it, so the decoded folder never sits in memory
(:mod:`pydnn2.preprocess.streaming`).

The paths are held as one byte buffer and offsets (:class:`PathList`), not a
Python string per file: a ``DataLoader`` worker forked from this process
would otherwise copy, page by page, every string whose reference count it
touches, and its memory would grow with the folder.

>>> files = ImageFiles(['a/1.png', 'a/2.png', 'b/3.png'])
>>> len(files), files.path(2), len(files[1:]), files[1:].path(0)
(3, 'b/3.png', 2, 'a/2.png')
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .reader import check_on_error, open_image, read_image, read_images


class PathList(Sequence):
    """File paths stored compactly: one byte buffer and the offsets into it.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
    """

    def __init__(self, paths):
        encoded = [os.fsencode(p) for p in paths]
        self._offsets = np.cumsum([0] + [len(p) for p in encoded], dtype=np.int64)
        self._buffer = np.frombuffer(b''.join(encoded), np.uint8) if encoded \
            else np.zeros(0, np.uint8)

    def __len__(self):
        return len(self._offsets) - 1

    def __getitem__(self, index):
        i = index
        if type(i) is not int or not 0 <= i < len(self._offsets) - 1:  # (the common case)
            if isinstance(index, slice):
                return [self[i] for i in range(*index.indices(len(self)))]
            i = operator.index(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f'path {i} of {len(self)}')
            i %= len(self)
        return os.fsdecode(self._buffer[self._offsets[i]:self._offsets[i + 1]].tobytes())

    @property
    def nbytes(self):
        """Bytes the paths take."""
        return self._buffer.nbytes + self._offsets.nbytes


class ImageFiles:
    """A lazy list of image files (see the module): read one at a time, when asked.

    Parameters
    ----------
    paths : sequence of str or PathList
        The files (a :class:`PathList` is shared between selections, never copied).
    color : bool
        False reads grey levels ``(H, W)``; True colour ``(3, H, W)``
        (as :func:`~pydnn2.data.read_image`).
    on_error : {'raise', 'skip'}
        What a preprocessor does with a file Pillow cannot read: raise a
        :class:`~pydnn2.errors.DataError` naming it, or leave it out with a
        warning (when the preprocessor first reads the files).
    index : array of int, optional
        The positions in ``paths`` of the files of this selection (all by default).
    """

    def __init__(self, paths: Sequence[str | os.PathLike] | PathList, color: bool = False,
                 on_error: str = 'raise', index: Any = None) -> None:
        self.paths = paths if isinstance(paths, PathList) else PathList(paths)
        self.color, self.on_error = bool(color), check_on_error(on_error)
        self.index = (np.arange(len(self.paths), dtype=np.int64) if index is None
                      else np.asarray(index, dtype=np.int64))

    def __len__(self):
        return len(self.index)

    @property
    def channels(self) -> int:
        """The number of channels of each image read (3 in colour, else 1)."""
        return 3 if self.color else 1

    def path(self, i: int) -> str:
        """The path of file ``i`` of this selection."""
        return self.paths[int(self.index[i])]

    def read(self, i: int) -> np.ndarray:
        """Image ``i``, read (a :class:`~pydnn2.errors.DataError` naming the file when
        it cannot be)."""
        return read_image(self.path(i), self.color)

    def open(self, i: int) -> Any:
        """Image ``i``, read as a Pillow image (grey, or RGB with ``color``)."""
        return open_image(self.path(i), self.color)

    def take(self, index: Any) -> ImageFiles:
        """The selection of files ``index`` (positions in this selection)."""
        return ImageFiles(self.paths, self.color, self.on_error,
                          self.index[np.asarray(index, dtype=np.int64)])

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.read(key)
        if isinstance(key, slice) or isinstance(key, (list, np.ndarray)):
            return self.take(np.arange(len(self))[key])
        raise ConfigError(f'ImageFiles are indexed by a position, a slice or an array of '
                          f'positions; received {type(key).__name__}')

    def __iter__(self):
        for i in range(len(self)):
            yield self.read(i)

    def read_all(self, on_error: str = 'raise', progress: bool | None = False,
                 workers: int | None = None
                 ) -> tuple[list[np.ndarray], list[int], list[tuple[str, str]]]:
        """Every image of the selection, read in threads: ``(images, kept, skipped)`` as
        :func:`~pydnn2.data.read_images` returns them."""
        return read_images([self.path(i) for i in range(len(self))], self.color,
                           on_error=on_error, progress=progress, workers=workers)

    def __repr__(self):
        colour = ', color=True' if self.color else ''
        return f'ImageFiles({len(self)} files{colour})'
