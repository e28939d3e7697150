"""Labelled and unlabelled image folders (pydnn's ``DirectoryLabeledImageSet``
and ``UnlabeledImageSet``).

A labelled folder holds one subfolder per class; an unlabelled one holds the
images to classify. Names starting with a dot (hidden files and folders) are
ignored everywhere. Only the files directly inside a class folder are read,
as in pydnn: folders inside a class folder are named in a warning and left
out. An entry that cannot be followed (a symbolic link that loops, or one
that cannot be examined) is a :class:`~pydnn2.errors.DataError` naming it,
or, with ``on_error='skip'``, left out with a warning.
"""

from __future__ import annotations

import os
from typing import Any, Iterator
import random
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import checks, tracebacks
from ..errors import ConfigError, DataError
from .imagefiles import ImageFiles
from .reader import _check_dtype, check_on_error, read_images


def _warn(message):
    """Warn at the user's line: the first caller outside pydnn2."""
    tracebacks.warn_at_user(message)


def _entries(folder, on_error):
    """Sorted names of the non-hidden ``(files, folders)`` in ``folder``.

    An entry that cannot be examined (a symbolic link that loops) raises a
    :class:`DataError` naming it, or with ``on_error='skip'`` is left out with
    a warning.
    """
    files, folders, broken = [], [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith('.'):
                continue
            try:
                if entry.is_file():
                    files.append(entry.name)
                elif entry.is_dir():
                    folders.append(entry.name)
            except OSError as error:
                if on_error != 'skip':
                    raise DataError(f'cannot read {entry.path!r}: {error.strerror} (a symbolic '
                                    "link that loops?). Remove or fix it, or pass "
                                    "on_error='skip' to skip it") from None
                broken.append(entry.path)
    if broken:
        _warn(f'skipped what cannot be read (a symbolic link that loops?): {broken}')
    return sorted(files), sorted(folders)


def _visible_files(folder, extensions, on_error):
    """:func:`_entries` of ``folder``, its files only those with one of
    ``extensions`` (when given)."""
    files, folders = _entries(folder, on_error)
    if extensions is not None:
        files = [n for n in files if os.path.splitext(n)[1].lower() in extensions]
    return files, folders


def _check_folder(base_dir, what):
    if not os.path.isdir(base_dir):
        raise DataError(f'{what} needs a folder of images; {os.fspath(base_dir)!r} '
                        f'is not a folder')
    return os.fspath(base_dir)


def _check_extensions(extensions):
    if extensions is None:
        return None
    if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions):
        raise ConfigError(f"extensions must be a list of file endings such as ['.png', '.jpg'];"
                          f' received {extensions!r}')
    return tuple(e.lower() if e.startswith('.') else '.' + e.lower() for e in extensions)


def _draw(rng, n):
    """One integer in ``[0, n)`` from a numpy RandomState or Generator."""
    return rng.integers(n) if isinstance(rng, np.random.Generator) else rng.randint(n)


class _ImageFolder:
    """What the two image sets share: reading options and the loaded file list."""

    def __init__(self, base_dir, color, on_error, extensions, progress, workers, stream):
        self.base_dir = _check_folder(base_dir, type(self).__name__)
        self.color = bool(color)
        self.on_error = check_on_error(on_error)
        self.extensions = _check_extensions(extensions)
        self.progress, self.workers = progress, workers
        self.stream = bool(stream)
        self.files = None
        self.skipped = []

    def _read(self, paths):
        """The images of ``paths`` and the positions of those kept; with ``stream``,
        :class:`~pydnn2.data.imagefiles.ImageFiles` (nothing read) and all positions."""
        if self.stream:
            self.skipped = []
            return ImageFiles(paths, self.color, self.on_error), range(len(paths))
        images, kept, self.skipped = read_images(
            paths, self.color, np.uint8, self.on_error, self.progress, self.workers,
            desc=f'reading {os.path.basename(os.path.normpath(self.base_dir))}')
        return images, kept

    def file_name(self, index: int) -> str:
        """Path of the file behind image ``index`` of the last :meth:`build`."""
        if self.files is None:
            raise DataError(f'{type(self).__name__}.file_name needs build() to be called first')
        return self.files[int(index)]


class DirectoryLabeledImageSet(_ImageFolder):
    """Labelled images from a folder holding one subfolder per class.

    The class names are the sorted subfolder names; class ``i`` is
    ``get_labels()[i]``. Hidden files and folders (names starting with a
    dot) and files directly inside ``base_dir`` are ignored. A class folder
    with no image files is left out of the labels with a warning, so that
    every class has examples.

    Parameters
    ----------
    base_dir : str or os.PathLike
        The folder holding the class folders.
    dtype : numpy dtype
        Type of the classes :meth:`build` returns (pydnn's argument; int64
        by default). Images are uint8 grey levels, as read.
    color : bool
        False reads grey levels ``(H, W)``; True keeps colour as ``(3, H, W)``.
    on_error : {'raise', 'skip'}
        What to do with a file Pillow cannot read: raise a
        :class:`~pydnn2.errors.DataError` naming it, or skip it with a warning.
    extensions : list of str, optional
        Only read files with these endings (e.g. ``['.png', '.jpg']``); by
        default every visible file is read.
    progress : bool, optional
        Show a progress bar; by default for 500 files or more.
    workers : int, optional
        Reading threads; by default twice the cores, at most 8.
    stream : bool
        False (pydnn's way) reads every image in :meth:`build`. True reads
        none: :meth:`build` lists the files and returns them as
        :class:`~pydnn2.data.imagefiles.ImageFiles`, which
        :func:`~pydnn2.preprocess.split_training_data` splits without reading
        and the image preprocessors decode in ``DataLoader`` workers batch by
        batch, so a folder larger than memory trains. Unreadable files are
        then found (raised, or skipped with ``on_error='skip'``) when the
        preprocessor first reads the files.

    Attributes
    ----------
    files : sequence of str
        After :meth:`build`, the path of each image; the file indices that
        :meth:`build` returns index this list.
    skipped : list of tuple
        ``(path, reason)`` of files skipped by the last :meth:`build` (never any
        with ``stream``).

    Examples
    --------
    >>> image_set = DirectoryLabeledImageSet(train_dir)       # doctest: +SKIP
    >>> images, classes, file_indices = image_set.build()     # doctest: +SKIP
    >>> image_set.file_name(file_indices[0])                   # doctest: +SKIP
    '.../train/acantharia_protist/100224.jpg'
    """

    def __init__(self, base_dir: str | os.PathLike, dtype: Any = np.int64, color: bool = False,
                 on_error: str = 'raise', extensions: Any = None,
                 progress: bool | None = None, workers: int | None = None,
                 stream: bool = False) -> None:
        super().__init__(base_dir, color, on_error, extensions, progress, workers, stream)
        self.dtype = _check_dtype(dtype)
        self._index = None

    def _scan(self):
        """``{label: sorted file names}`` of the non-empty class folders (cached)."""
        if self._index is None:
            folders = _entries(self.base_dir, self.on_error)[1]
            index = {f: self._class_files(f) for f in folders}
            empty = [f for f, names in index.items() if not names]
            if empty:
                warnings.warn(f'{len(empty)} class folder(s) in {self.base_dir!r} hold no image '
                              f'files and are left out of the labels: {empty}', stacklevel=3)
            self._index = {f: names for f, names in index.items() if names}
            if not self._index:
                raise DataError(f'found no class folders with images in {self.base_dir!r}; '
                                f'expected one subfolder of images per class; received '
                                f'subfolders {folders}')
        return self._index

    def _class_files(self, label):
        """The image file names of one class folder; its own folders are named in a
        warning (only the files directly inside are read, as in pydnn)."""
        files, inner = _visible_files(os.path.join(self.base_dir, label), self.extensions,
                                      self.on_error)
        if inner:
            _warn(f'class folder {label!r} in {self.base_dir!r} holds folders, whose files are '
                  f'not read (only the files directly inside a class folder are): {inner}')
        return files

    def get_labels(self) -> list[str]:
        """Return the class names: the sorted names of the non-empty class folders."""
        return list(self._scan())

    def get_files(self, num_files: int | None = None,
                  seed: int = 12345) -> list[tuple[str, str]]:
        """Return ``(file_name, label)`` pairs, sorted by label and name.

        Parameters
        ----------
        num_files : int, optional
            Return a random sample of this many files instead, in the order
            drawn: pydnn's ``random.sample`` with the seed 12345, so the
            same folder always gives the same sample.
        seed : int
            Seed of the sample.
        """
        files = [(name, label) for label, names in self._scan().items() for name in names]
        if num_files is None:
            return files
        checks.integer(num_files, 'num_files', 1, maximum=len(files),
                       expected=f'an integer from 1 to the {len(files)} files found')
        return random.Random(seed).sample(files, num_files)

    def get_random_file(self, rng: Any) -> str:
        """The path of a file drawn at random: a class folder, then a file in it.

        Parameters
        ----------
        rng : numpy.random.RandomState or numpy.random.Generator
        """
        index = self._scan()
        label = list(index)[int(_draw(rng, len(index)))]
        return os.path.join(self.base_dir, label, index[label][int(_draw(rng, len(index[label])))])

    def build(self, num_images: int | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
        """Read the images (all, or a reproducible sample of ``num_images``).

        Returns
        -------
        images : list of ndarray, or ImageFiles
            ``(H, W)`` (or ``(3, H, W)`` with ``color``) arrays of their own sizes;
            with ``stream``, the files as :class:`~pydnn2.data.imagefiles.ImageFiles`
            (read when used).
        classes : ndarray of ``dtype``
            Index into :meth:`get_labels` of each image's class.
        file_indices : ndarray of int64
            Index into ``files`` (see :meth:`file_name`) of each image.
        """
        pairs = self.get_files(num_images)
        paths = [os.path.join(self.base_dir, label, name) for name, label in pairs]
        images, kept = self._read(paths)
        number = {label: i for i, label in enumerate(self.get_labels())}
        self.files = images.paths if self.stream else [paths[i] for i in kept]
        classes = np.array([number[pairs[i][1]] for i in kept], self.dtype)
        return images, classes, np.arange(len(kept), dtype=np.int64)


class UnlabeledImageSet(_ImageFolder):
    """Images to classify, from one folder (hidden files ignored).

    Parameters
    ----------
    base_dir : str or os.PathLike
        The folder holding the images.
    color, on_error, extensions, progress, workers
        As for :class:`DirectoryLabeledImageSet`.
    stream : bool
        True: :meth:`build` reads nothing and returns the files as
        :class:`~pydnn2.data.imagefiles.ImageFiles`; ``net.predict({'images':
        files})`` reads them a batch at a time. Every file must then be readable
        (``on_error='raise'``): a prediction has one row per file.

    Examples
    --------
    >>> test_set = UnlabeledImageSet(test_dir)              # doctest: +SKIP
    >>> names, images = test_set.build(0, 1000)             # doctest: +SKIP
    >>> probabilities = net.predict({'images': images})      # doctest: +SKIP
    """

    def __init__(self, base_dir: str | os.PathLike, *, color: bool = False,
                 on_error: str = 'raise', extensions: Any = None, progress: bool | None = None,
                 workers: int | None = None, stream: bool = False) -> None:
        super().__init__(base_dir, color, on_error, extensions, progress, workers, stream)
        if self.stream and self.on_error == 'skip':
            raise ConfigError("UnlabeledImageSet(stream=True) predicts one row per file, so it "
                              "cannot skip unreadable ones; received on_error='skip'. Use "
                              "stream=False (or iter_slices) to skip them")
        self._names: list[str] | None = None

    def get_files(self) -> list[str]:
        """Return the sorted names of the image files (relative to ``base_dir``)."""
        if self._names is None:
            self._names = _visible_files(self.base_dir, self.extensions, self.on_error)[0]
        return list(self._names)

    def build(self, start: int = 0, stop: int | None = None) -> tuple[list[str], Any]:
        """Read files ``start:stop`` of :meth:`get_files`.

        Returns
        -------
        file_names : list of str
            The names of the images returned (skipped files left out).
        images : list of ndarray, or ImageFiles
            With ``stream``, the files, read when used.
        """
        start = checks.integer(start, 'start', where='UnlabeledImageSet.build')
        stop = checks.integer(stop, 'stop', where='UnlabeledImageSet.build', none=True)
        names, images, self.files = self._slice(start, stop)
        return names, images

    def _slice(self, start, stop):
        """Names, images and paths of the readable files ``start:stop``."""
        names = self.get_files()[start:stop]
        images, kept = self._read([os.path.join(self.base_dir, n) for n in names])
        return ([names[i] for i in kept], images,
                images.paths if self.stream else [os.path.join(self.base_dir, names[i])
                                                  for i in kept])

    def iter_slices(self, slice_size: int, start: int = 0, stop: int | None = None,
                    prefetch: bool = True) -> Iterator[tuple[list[str], Any]]:
        """Yield ``(file_names, images)`` for files ``start:stop``, ``slice_size`` at a time.

        Only one slice (two with ``prefetch``) is held at once, so predicting
        a folder of any size this way keeps memory flat. With ``prefetch``
        the next slice is read in a background thread while the caller
        works on the current one (say, ``net.predict``, whose arithmetic
        leaves the GIL free). While a slice is out, ``files`` and
        :meth:`file_name` refer to it.

        Examples
        --------
        >>> for names, images in test_set.iter_slices(16300):    # doctest: +SKIP
        ...     _, probabilities = net.predict({'images': images})
        """
        slice_size = checks.integer(slice_size, 'slice_size', 1)
        count = len(self.get_files())
        stop = count if stop is None else min(checks.integer(stop, 'stop', 0), count)
        starts = range(checks.integer(start, 'start', 0), stop, slice_size)
        with ThreadPoolExecutor(1) as executor:
            pending = None
            for first in starts:
                job = (first, min(stop, first + slice_size))
                future = executor.submit(self._slice, *job) if prefetch else None
                if pending is not None:
                    yield self._hand_out(pending)
                pending = future or self._slice(*job)
            if pending is not None:
                yield self._hand_out(pending)

    def _hand_out(self, pending):
        names, images, self.files = pending if isinstance(pending, tuple) else pending.result()
        return names, images
