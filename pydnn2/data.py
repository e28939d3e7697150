"""Data sources: built-in small datasets and labelled image folders.

``load_digits`` returns scikit-learn's bundled 8x8 digits in pydnn2's
``(x, classes, file_indices)`` form, so examples and tests need no download.

:class:`DirectoryLabeledImageSet` reads a folder with one subfolder per
class, :class:`UnlabeledImageSet` a folder of images to classify. Images are
read with Pillow (any format it knows: PNG, JPEG, BMP, TIFF, ...), in a
pool of threads (Pillow decodes without holding the GIL, so every core
works) with a progress bar for large folders. They come back as a list of
arrays of their own sizes: ``(H, W)`` grey levels by default, ``(3, H, W)``
with ``color=True``. Names starting with a dot (hidden files and folders)
are ignored everywhere.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from PIL import Image
>>> root = tempfile.mkdtemp()
>>> for label in ('cat', 'dog'):
...     os.mkdir(os.path.join(root, label))
...     for i in range(3):
...         Image.fromarray(np.full((4 + i, 5), 200, np.uint8)).save(
...             os.path.join(root, label, f'{i}.png'))
>>> image_set = DirectoryLabeledImageSet(root)
>>> images, classes, files = image_set.build()
>>> image_set.get_labels(), classes.tolist(), images[1].shape
(['cat', 'dog'], [0, 0, 0, 1, 1, 1], (5, 5))
>>> os.path.relpath(image_set.file_name(files[4]), root)
'dog/1.png'
"""

import functools
import numbers
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .errors import ConfigError, DataError

PROGRESS_MIN_ITEMS = 500  # show a progress bar by default from this many files on


def load_digits():
    """Return scikit-learn's digits as ``(images, classes, file_indices)``.

    Returns
    -------
    images : ndarray of float32, shape (1797, 1, 8, 8)
        Grey levels 0..16, one channel.
    classes : ndarray of int64, shape (1797,)
        The digit shown, 0..9.
    file_indices : ndarray of int64, shape (1797,)
        The row number of each image in scikit-learn's data set, standing in
        for the file it came from.

    Examples
    --------
    >>> images, classes, files = load_digits()
    >>> images.shape, int(classes.max())
    ((1797, 1, 8, 8), 9)
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None, :, :]  # (N, 8, 8) -> (N, 1, 8, 8)
    classes = bunch.target.astype(np.int64)
    return images, classes, np.arange(len(classes), dtype=np.int64)


def parallel_map(fn, items, desc=None, progress=None, workers=None):
    """Return ``[fn(item) for item in items]``, computed in a pool of threads.

    Suits work that releases the GIL (Pillow's decoding and resizing,
    file reads). The first exception stops the pool and is raised.

    Parameters
    ----------
    fn : callable
    items : iterable
    desc : str, optional
        Label of the progress bar.
    progress : bool, optional
        Show a tqdm progress bar; by default only for
        ``PROGRESS_MIN_ITEMS`` items or more.
    workers : int, optional
        Number of threads; by default twice the number of cores, at most 8.
    """
    items = list(items)
    workers = min(8, 2 * (os.cpu_count() or 1)) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ConfigError(f'workers must be a positive integer; received {workers!r}')
    show = len(items) >= PROGRESS_MIN_ITEMS if progress is None else bool(progress)
    bar = tqdm(total=len(items), desc=desc, disable=not show)
    if workers == 1 or len(items) < 2:
        results = []
        for item in items:
            results.append(fn(item))
            bar.update()
        bar.close()
        return results
    executor = ThreadPoolExecutor(workers)
    try:
        results = []
        for result in executor.map(fn, items):
            results.append(result)
            bar.update()
        return results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind not in 'uif':
        raise ConfigError(f'dtype must be a numeric dtype such as np.uint8 or np.float32; '
                          f'received {dtype}')
    return dtype


def _deep_to_uint8(image):
    """16-bit and float Pillow images -> 8-bit grey levels."""
    array = np.asarray(image)
    if image.mode == 'F':
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    if array.max(initial=0) > 255:  # 16-bit data: 0..65535 -> 0..255
        array = np.round(array.astype(np.float64) / 257)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _on_white(image):
    """Composite an image with transparency onto white (the background pydnn2 assumes)."""
    rgba = image.convert('RGBA')
    return Image.alpha_composite(Image.new('RGBA', rgba.size, (255, 255, 255, 255)), rgba)


def _to_array(image, color):
    if image.mode in ('I', 'F') or image.mode.startswith('I;16'):
        image = _deep_to_uint8(image)
    if 'A' in image.mode or 'transparency' in image.info:
        image = _on_white(image)
    if not color:
        return np.asarray(image.convert('L'))
    return np.asarray(image.convert('RGB')).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def read_image(path, color=False, dtype=np.uint8):
    """Read one image file with Pillow.

    Parameters
    ----------
    path : str or os.PathLike
    color : bool
        False converts to grey levels ``(H, W)``; True keeps colour as
        ``(3, H, W)`` RGB. Transparent parts are shown on white; 16-bit
        images are scaled to 0..255; of an animation, the first frame.
    dtype : numpy dtype
        Type of the returned array; values stay in 0..255.

    Raises
    ------
    DataError
        Naming the file, when it is missing or not an image Pillow can read.
    """
    try:
        with Image.open(path) as image:
            image.load()
            array = _to_array(image, color)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f'cannot read the image file {os.fspath(path)!r}: {error}. Remove or '
                        f"fix it, or pass on_error='skip' to skip unreadable files") from None
    return array.astype(dtype, copy=False)


def _read_or_error(path, read):
    try:
        return read(path)
    except DataError as error:
        return error


def read_images(paths, color=False, dtype=np.uint8, on_error='raise', progress=None,
                workers=None, desc='reading images'):
    """Read many image files in parallel (see :func:`read_image`).

    Parameters
    ----------
    paths : list of str
    color, dtype
        As for :func:`read_image`.
    on_error : {'raise', 'skip'}
        'raise' stops at the first unreadable file with a :class:`DataError`
        naming it; 'skip' leaves such files out and warns once, naming them.
    progress, workers
        As for :func:`parallel_map`.

    Returns
    -------
    images : list of ndarray
    kept : list of int
        The positions in ``paths`` of the images returned.
    skipped : list of tuple
        ``(path, reason)`` for every file left out.
    """
    if on_error not in ('raise', 'skip'):
        raise ConfigError(f"on_error must be 'raise' or 'skip'; received {on_error!r}")
    read = functools.partial(read_image, color=color, dtype=_check_dtype(dtype))
    if on_error == 'skip':
        read = functools.partial(_read_or_error, read=read)
    results = parallel_map(read, paths, desc=desc, progress=progress, workers=workers)
    kept = [i for i, r in enumerate(results) if not isinstance(r, DataError)]
    skipped = [(os.fspath(paths[i]), str(r)) for i, r in enumerate(results)
               if isinstance(r, DataError)]
    if skipped:
        names = ', '.join(repr(p) for p, _ in skipped[:5])
        more = f' and {len(skipped) - 5} more' if len(skipped) > 5 else ''
        warnings.warn(f'skipped {len(skipped)} unreadable image file(s): {names}{more}',
                      stacklevel=2)
    return [results[i] for i in kept], kept, skipped


def _visible_files(folder, extensions):
    """Sorted names of the non-hidden regular files in ``folder``."""
    names = sorted(entry.name for entry in os.scandir(folder)
                   if not entry.name.startswith('.') and entry.is_file())
    if extensions is not None:
        names = [n for n in names if os.path.splitext(n)[1].lower() in extensions]
    return names


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


class _ImageFolder:
    """What the two image sets share: reading options and the loaded file list."""

    def __init__(self, base_dir, dtype, color, on_error, extensions, progress, workers):
        self.base_dir = _check_folder(base_dir, type(self).__name__)
        self.dtype = _check_dtype(dtype)
        self.color = bool(color)
        if on_error not in ('raise', 'skip'):
            raise ConfigError(f"on_error must be 'raise' or 'skip'; received {on_error!r}")
        self.on_error = on_error
        self.extensions = _check_extensions(extensions)
        self.progress, self.workers = progress, workers
        self.files = None
        self.skipped = []

    def _read(self, paths):
        images, kept, self.skipped = read_images(
            paths, self.color, self.dtype, self.on_error, self.progress, self.workers,
            desc=f'reading {os.path.basename(os.path.normpath(self.base_dir))}')
        return images, kept

    def file_name(self, index):
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
        Type of the image arrays (values stay 0..255). Unlike pydnn, where
        ``dtype`` typed the labels, classes are always int64.
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

    Attributes
    ----------
    files : list of str
        After :meth:`build`, the path of each image; the file indices that
        :meth:`build` returns index this list.
    skipped : list of tuple
        ``(path, reason)`` of files skipped by the last :meth:`build`.

    Examples
    --------
    >>> image_set = DirectoryLabeledImageSet(train_dir)       # doctest: +SKIP
    >>> images, classes, file_indices = image_set.build()     # doctest: +SKIP
    >>> image_set.file_name(file_indices[0])                   # doctest: +SKIP
    '.../train/acantharia_protist/100224.jpg'
    """

    def __init__(self, base_dir, dtype=np.uint8, color=False, on_error='raise',
                 extensions=None, progress=None, workers=None):
        super().__init__(base_dir, dtype, color, on_error, extensions, progress, workers)
        self._index = None

    def _scan(self):
        """``{label: sorted file names}`` of the non-empty class folders (cached)."""
        if self._index is None:
            folders = sorted(entry.name for entry in os.scandir(self.base_dir)
                             if entry.is_dir() and not entry.name.startswith('.'))
            index = {f: _visible_files(os.path.join(self.base_dir, f), self.extensions)
                     for f in folders}
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

    def get_labels(self):
        """Return the class names: the sorted names of the non-empty class folders."""
        return list(self._scan())

    def get_files(self, num_files=None, seed=12345):
        """Return ``(file_name, label)`` pairs, sorted by label and name.

        Parameters
        ----------
        num_files : int, optional
            Return a random sample of this many files (in sorted order);
            the same ``seed`` always gives the same sample.
        seed : int
            Seed of the sample.
        """
        files = [(name, label) for label, names in self._scan().items() for name in names]
        if num_files is None:
            return files
        if isinstance(num_files, bool) or not isinstance(num_files, numbers.Integral) \
                or not 0 < num_files <= len(files):
            raise ConfigError(f'num_files must be an integer from 1 to the {len(files)} files '
                              f'found; received {num_files!r}')
        chosen = np.sort(np.random.RandomState(seed).choice(len(files), num_files, replace=False))
        return [files[i] for i in chosen]

    def build(self, num_images=None):
        """Read the images (all, or a reproducible sample of ``num_images``).

        Returns
        -------
        images : list of ndarray
            ``(H, W)`` (or ``(3, H, W)`` with ``color``) arrays of their own sizes.
        classes : ndarray of int64
            Index into :meth:`get_labels` of each image's class.
        file_indices : ndarray of int64
            Index into :attr:`files` (see :meth:`file_name`) of each image.
        """
        pairs = self.get_files(num_images)
        paths = [os.path.join(self.base_dir, label, name) for name, label in pairs]
        images, kept = self._read(paths)
        number = {label: i for i, label in enumerate(self.get_labels())}
        self.files = [paths[i] for i in kept]
        classes = np.array([number[pairs[i][1]] for i in kept], np.int64)
        return images, classes, np.arange(len(kept), dtype=np.int64)


class UnlabeledImageSet(_ImageFolder):
    """Images to classify, from one folder (hidden files ignored).

    Parameters
    ----------
    base_dir : str or os.PathLike
        The folder holding the images.
    dtype, color, on_error, extensions, progress, workers
        As for :class:`DirectoryLabeledImageSet`.

    Examples
    --------
    >>> test_set = UnlabeledImageSet(test_dir)              # doctest: +SKIP
    >>> names, images = test_set.build(0, 1000)             # doctest: +SKIP
    >>> probabilities = net.predict({'images': images})      # doctest: +SKIP
    """

    def __init__(self, base_dir, dtype=np.uint8, color=False, on_error='raise',
                 extensions=None, progress=None, workers=None):
        super().__init__(base_dir, dtype, color, on_error, extensions, progress, workers)
        self._names = None

    def get_files(self):
        """Return the sorted names of the image files (relative to ``base_dir``)."""
        if self._names is None:
            self._names = _visible_files(self.base_dir, self.extensions)
        return list(self._names)

    def build(self, start=0, stop=None):
        """Read files ``start:stop`` of :meth:`get_files`.

        Returns
        -------
        file_names : list of str
            The names of the images returned (skipped files left out).
        images : list of ndarray
        """
        names = self.get_files()[start:stop]
        images, kept = self._read([os.path.join(self.base_dir, n) for n in names])
        self.files = [os.path.join(self.base_dir, names[i]) for i in kept]
        return [names[i] for i in kept], images


DIGIT_FOLDERS = ('0-zero', '1-one', '2-two', '3-three', '4-four', '5-five', '6-six', '7-seven', '8-eight',
         '9-nine')  # class folders; their sorted order is the class numbering
DIGIT_MAX_ANGLE = 30  # degrees either way


def _draw_digit(digit_image, digit, rng):
    """A digit dark on white, at a random size (larger for larger digits), turned."""
    grey = (255 - digit_image * 255 / 16).astype(np.uint8)  # ink 0..16 -> grey 255..0
    side = int(rng.randint(14, 22) + 2 * digit)
    image = Image.fromarray(grey).resize((side, int(side * rng.uniform(0.8, 1.2))),
                                         Image.Resampling.BILINEAR)
    image = image.rotate(rng.uniform(-DIGIT_MAX_ANGLE, DIGIT_MAX_ANGLE), Image.Resampling.BILINEAR,
                         expand=True, fillcolor=255)
    noise = rng.randint(-12, 12, size=(image.height, image.width))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))


def write_digit_images(root, num_images=None, num_unlabeled=100, seed=0):
    """Write a labelled image folder made from scikit-learn's digits, for trying
    the image workflow without downloading anything.

    Each digit is drawn dark on white at a random size that grows a little
    with the digit, turned by up to 30 degrees either way, with some noise,
    and saved as PNG or JPEG (alternately) in ``root/train/<class>/``; the
    first ``num_unlabeled`` go to ``root/unlabeled/`` instead.

    Parameters
    ----------
    root : str
        Folder to write into (created if needed).
    num_images : int, optional
        How many digits to use (default: all 1,797).
    num_unlabeled : int
        How many of them go to the unlabeled folder.
    seed : int
        Seeds the sizes, angles and noise.

    Returns
    -------
    (str, dict)
        The unlabeled folder, and the true digit of each of its files.

    Examples
    --------
    >>> folder, truth = write_digit_images(tmp, num_images=30, num_unlabeled=5)  # doctest: +SKIP
    """
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(digits.target))[:num_images]
    unlabeled, truth = os.path.join(root, 'unlabeled'), {}
    os.makedirs(unlabeled, exist_ok=True)
    for n, index in enumerate(order):
        digit = int(digits.target[index])
        image = _draw_digit(digits.images[index], digit, rng)
        if n < num_unlabeled:
            name = f'unseen_{n:04d}.png'
            image.save(os.path.join(unlabeled, name))
            truth[name] = digit
            continue
        folder = os.path.join(root, 'train', DIGIT_FOLDERS[digit])
        os.makedirs(folder, exist_ok=True)
        image.save(os.path.join(folder, f'{index:04d}' + ('.png' if n % 2 else '.jpg')))
    return unlabeled, truth
