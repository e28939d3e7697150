"""Reading image files with Pillow, in a pool of threads when that is faster.

Pillow decodes without holding the GIL, so for large images the threads of
:func:`parallel_map` keep every core busy; for small ones one thread is
faster, and :func:`parallel_map` times the first few to choose. A progress
bar appears for large sets. Images come back as arrays of their own sizes:
``(H, W)`` grey levels by default, ``(3, H, W)`` with ``color=True``, turned
upright as their EXIF orientation says (as photo viewers show them).
"""

from __future__ import annotations

import functools
import io
import os
from typing import Any, Callable, Sequence
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

from .. import checks, progress as progress_bars
from ..errors import ConfigError, DataError

PROGRESS_MIN_ITEMS = 500  # show a progress bar by default from this many files on


PROBE_ITEMS = 16           # items timed one by one before choosing threads or not
THREADS_FROM = 2e-4        # seconds per item from which threads pay for their overhead
CHUNK_SECONDS = 0.01       # the work handed to a thread at a time


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], desc: str | None = None,
                 progress: bool | None = None, workers: int | None = None) -> list[Any]:
    """Return ``[fn(item) for item in items]``, computed in a pool of threads
    when that is faster.

    Suits work that releases the GIL (Pillow's decoding and resizing,
    file reads). By default the first items are timed one by one: when the
    median item takes less than ``THREADS_FROM`` seconds (small images,
    where the Python around Pillow holds the GIL most of the time) the rest
    run in this thread too, which is then faster than a pool; otherwise the rest
    run in a pool, handed out in chunks of about ``CHUNK_SECONDS``. The
    first exception stops the pool and is raised.

    Parameters
    ----------
    fn : callable
    items : iterable
    desc : str, optional
        Label of the progress bar.
    progress : bool, optional
        Show a progress bar (where the output can show one: see
        :mod:`pydnn2.progress`); by default only for
        ``PROGRESS_MIN_ITEMS`` items or more.
    workers : int, optional
        Number of threads; by default twice the number of cores, at most 8,
        if the timing says threads help. An explicit number above 1 always
        uses a pool.
    """
    items = list(items)
    chosen = workers is not None
    workers = min(8, 2 * (os.cpu_count() or 1)) if workers is None else workers
    workers = checks.integer(workers, 'workers', 1)
    show = len(items) >= PROGRESS_MIN_ITEMS if progress is None else bool(progress)
    bar = progress_bars.progress_bar(len(items), desc, enabled=show, leave=True)
    try:
        probe = 0 if chosen else min(PROBE_ITEMS, len(items))
        results, per_item = _probe(fn, items[:probe], bar)
        rest = items[probe:]
        if workers == 1 or len(rest) < 2 or (not chosen and per_item < THREADS_FROM):
            return results + _serial(fn, rest, bar)
        size = max(1, min(len(rest) // workers, int(CHUNK_SECONDS / max(per_item, 1e-6))))
        return results + _pooled(fn, rest, bar, workers, size)
    finally:
        bar.close()


def _probe(fn, items, bar):
    """``fn`` over ``items`` one by one, and the median seconds an item took (the
    median, so that a first call's set-up or a moment without the CPU does not
    decide)."""
    results, seconds = [], []
    for item in items:
        started = time.perf_counter()
        results.append(fn(item))
        seconds.append(time.perf_counter() - started)
        bar.update()
    return results, (sorted(seconds)[len(seconds) // 2] if seconds else 0.0)


def _serial(fn, items, bar):
    results = []
    for item in items:
        results.append(fn(item))
        bar.update()
    return results


def _pooled(fn, items, bar, workers, size):
    """``fn`` over ``items`` in ``workers`` threads, ``size`` items at a time."""
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    executor = ThreadPoolExecutor(workers)
    try:
        results = []
        for chunk in executor.map(lambda chunk: [fn(item) for item in chunk], chunks):
            results += chunk
            bar.update(len(chunk))
        return results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def check_on_error(on_error: str) -> str:
    """``on_error`` if it is 'raise' or 'skip'."""
    return checks.one_of(on_error, 'on_error', ('raise', 'skip'))


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind not in 'uif':
        raise ConfigError(f'dtype must be a numeric dtype such as np.uint8 or np.float32; '
                          f'received {dtype}')
    return dtype


EXIF_ORIENTATION = 0x0112    # the EXIF tag of how a camera held the picture (1: upright)


#: Formats whose orientation can come only from what Pillow puts in ``info`` under
#: :data:`_ORIENTATION_KEYS` (EXIF, XMP; what ``Image.getexif`` reads for them,
#: Pillow 13): without them, the image is upright as it is.
_ORIENTATION_IN_INFO = ('JPEG', 'PNG')
_ORIENTATION_KEYS = ('exif', 'Raw profile type exif', 'XML:com.adobe.xmp', 'xmp')


def _upright(image):
    """``image`` turned and flipped as its EXIF orientation tag says (itself when
    it has none, or says upright)."""
    if image.format in _ORIENTATION_IN_INFO and not any(k in image.info
                                                        for k in _ORIENTATION_KEYS):
        return image                                # (parsing no EXIF costs ~10 us)
    if image.getexif().get(EXIF_ORIENTATION, 1) in (1, None):
        return image
    return ImageOps.exif_transpose(image)


def _deep_to_uint8(image):
    """16-bit, 32-bit and float Pillow images -> 8-bit grey levels.

    Floats are taken as grey levels and clipped to 0..255. Integers up to 255
    are kept; up to 65535 they are 16-bit levels (0..65535 -> 0..255); with a
    value above 65535 (32-bit data) they are scaled by their largest value to
    0..255. Negative values become 0.
    """
    array = np.asarray(image)
    if image.mode == 'F':
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    top = array.max(initial=0)
    if top > 65535:  # 32-bit data: 0..max -> 0..255
        array = np.round(array.astype(np.float64) * (255 / float(top)))
    elif top > 255:  # 16-bit data: 0..65535 -> 0..255
        array = np.round(array.astype(np.float64) / 257)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _on_white(image):
    """Composite an image with transparency onto white (the background pydnn2 assumes)."""
    rgba = image.convert('RGBA')
    return Image.alpha_composite(Image.new('RGBA', rgba.size, (255, 255, 255, 255)), rgba)


def _converted(image, color):
    """``image`` as an 8-bit grey ('L') or, with ``color``, 'RGB' Pillow image."""
    if image.mode == 'L' and not color and 'transparency' not in image.info:
        return image                                # the common case, as it is
    if image.mode in ('I', 'F') or image.mode.startswith('I;16'):
        image = _deep_to_uint8(image)
    if 'A' in image.mode or 'transparency' in image.info:
        image = _on_white(image)
    return image.convert('RGB' if color else 'L')


def image_array(image: Any) -> np.ndarray:
    """A grey ('L') or 'RGB' Pillow image as a uint8 array ``(H, W)`` or ``(3, H, W)``."""
    if image.mode == 'RGB':
        return np.asarray(image).transpose(2, 0, 1)   # (H, W, 3) -> (3, H, W)
    return np.asarray(image)


def open_image(path: str | os.PathLike, color: bool = False) -> Any:
    """Read one image file with Pillow, as :func:`read_image` does, and return it as a
    Pillow image: grey ('L'), or 'RGB' with ``color``, decoded and upright
    (a :class:`~pydnn2.errors.DataError` naming the file when it cannot be read)."""
    try:
        with Image.open(path) as image:
            image.load()
            return _converted(_upright(image), color)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f'cannot read the image file {os.fspath(path)!r}: {error}. Remove or '
                        f"fix it, or pass on_error='skip' to skip unreadable files") from None


def read_image(path: str | os.PathLike, color: bool = False, dtype: Any = np.uint8) -> np.ndarray:
    """Read one image file with Pillow.

    Parameters
    ----------
    path : str or os.PathLike
    color : bool
        False converts to grey levels ``(H, W)``; True keeps colour as
        ``(3, H, W)`` RGB. Transparent parts are shown on white; 16-bit
        images are scaled to 0..255, 32-bit ones (a value above 65535) by
        their largest value to 0..255; of an animation, the first frame. A
        photo with an EXIF orientation is turned upright.
    dtype : numpy dtype
        Type of the returned array; values stay in 0..255.

    Raises
    ------
    DataError
        Naming the file, when it is missing or not an image Pillow can read.
    """
    return image_array(open_image(path, color)).astype(dtype, copy=False)


def decode_image(data: bytes, color: bool = False, where: str = 'the image') -> np.ndarray:
    """Decode an encoded image (the bytes of a PNG, JPEG, ... file) as :func:`read_image`
    reads a file: ``(H, W)`` grey levels, or ``(3, H, W)`` with ``color``, uint8.

    Raises
    ------
    DataError
        Naming ``where``, when Pillow cannot read the bytes.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image_array(_converted(_upright(image), color))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f'cannot read {where} as an image: {error}') from None


def _read_or_error(path, read):
    try:
        return read(path)
    except DataError as error:
        return error


def read_images(paths: Sequence[str | os.PathLike], color: bool = False, dtype: Any = np.uint8,
                on_error: str = 'raise', progress: bool | None = None,
                workers: int | None = None, desc: str = 'reading images'
                ) -> tuple[list[np.ndarray], list[int], list[tuple[str, str]]]:
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
    check_on_error(on_error)
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
