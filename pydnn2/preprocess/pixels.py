"""What a raw image is: checks of images, sizes, grey levels and thresholds.

Images are 2-D ``(H, W)`` grey-level arrays or ``(C, H, W)`` colour arrays
with values in 0..255; sizes are ``(height, width)``; the objects are dark on
a light background (white, 255, fills new space), as in pydnn.
"""

import numpy as np

from .. import checks
from ..errors import ConfigError, DataError


def check_size(size, name='image size'):
    """Return ``size`` as a ``(height, width)`` tuple of positive ints.

    Raises
    ------
    ConfigError
        If ``size`` is not two positive integers.
    """
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(checks.is_integer(s) and s > 0 for s in size)):
        raise ConfigError(f'an {name} must be (height, width) with two positive integers; '
                          f'received {size!r}')
    return int(size[0]), int(size[1])


def as_image(image, what='image'):
    """Return ``image`` as a uint8 ``(H, W)`` or ``(C, H, W)`` array.

    Integer or float arrays whose values lie in 0..255 are rounded and cast;
    anything else is refused.

    Raises
    ------
    DataError
        If the array is not 2-D or 3-D, is empty, or holds values outside
        0..255 (or NaN).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise DataError(f'{what} must be a non-empty 2-D (H, W) or 3-D (C, H, W) array; '
                        f'received shape {image.shape}')
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind not in 'biuf':
        raise DataError(f'{what} must hold numbers in 0..255; received dtype {image.dtype}')
    lo, hi = (float(image.min()), float(image.max())) if image.dtype.kind == 'f' \
        else (int(image.min()), int(image.max()))
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo and hi <= 255):
        raise DataError(f'{what} must hold grey levels in 0..255; received values from '
                        f'{lo} to {hi} (dtype {image.dtype})')
    return np.round(image).astype(np.uint8)


def check_fill(fill):
    """A grey level for new space, 0..255, as an int."""
    return int(round(checks.number(fill, 'fill', at_least=0, at_most=255,
                                   expected='a grey level in 0..255')))


def check_threshold(threshold):
    """A grey level in (0, 256]: pixels below it count as the object."""
    return checks.number(threshold, 'threshold', above=0, at_most=256,
                         expected='a grey level in (0, 256]: pixels below it count as '
                                  'the object')


def dark_mask(image, threshold):
    """Boolean ``(H, W)`` mask of pixels darker than ``threshold``.

    A colour image counts by the mean of its channels.
    """
    gray = image if image.ndim == 2 else image.mean(axis=0)  # (C, H, W) -> (H, W)
    return gray < threshold


def pydnn_dark_mask(image, threshold):
    """Boolean ``(H, W)`` mask of the pixels pydnn's contiguous boxes count:
    ``255 - value > threshold`` (a colour image by the mean of its channels)."""
    gray = image if image.ndim == 2 else image.mean(axis=0)  # (C, H, W) -> (H, W)
    return 255.0 - gray > threshold
