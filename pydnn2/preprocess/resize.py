"""Resizers: turn raw images of any size into images of one size.

A resizer answers two questions, ``training(image, size)`` and
``prediction(image, size)``, so that training images may be resized
differently (for instance with a random stretch) from the images a net is
asked about. Images are 2-D ``(H, W)`` grey-level arrays or ``(C, H, W)``
colour arrays with values in 0..255; ``size`` is ``(height, width)``.
Space that a resizer has to invent is filled with ``fill`` (white, 255, by
default, as in pydnn: the objects are dark on a light background).

The *box* resizers first crop the image around its dark pixels, those with
a grey level below ``threshold`` (see :mod:`pydnn2.preprocess.boxes`).

Examples
--------
>>> import numpy as np
>>> image = np.full((30, 60), 255, np.uint8)
>>> image[10:20, 5:25] = 0
>>> StretchResizer().prediction(image, (16, 16)).shape
(16, 16)
>>> out = ThresholdBoxPreserveAspectRatioResizer(128).prediction(image, (16, 16))
>>> int(out[0, 0]), int(out[8, 8])
(255, 0)
"""

from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

from .. import checks
from ..data.reader import image_array
from ..errors import ConfigError, DataError
from .boxes import crop, largest_blob_box, threshold_box
from .pixels import (as_image, check_fill, check_size, check_threshold, dark_mask,
                     pydnn_dark_mask)

__all__ = ['Resizer', 'StretchResizer', 'PreserveAspectRatioResizer',
           'ThresholdBoxStretchResizer', 'ThresholdBoxPreserveAspectRatioResizer',
           'ContiguousBoxStretchResizer', 'ContiguousBoxPreserveAspectRatioResizer',
           'StochasticStretchResizer', 'resizer_from_state']

_RESIZERS: dict[str, type] = {}


def _stretch(image, size):
    """Resize ``image`` to exactly ``size`` (bilinear, anti-aliased when shrinking)."""
    if image.shape[-2:] == tuple(size):
        return image.copy()
    h, w = size
    if image.ndim == 2:
        return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
    return np.stack([_stretch(plane, size) for plane in image])  # C x (H, W) -> (C, H, W)


def _crop_or_pad(image, size, fill):
    """Centre ``image`` in a ``size`` canvas of ``fill``, cropping what sticks out."""
    out = np.full(image.shape[:-2] + tuple(size), fill, np.uint8)
    src, dst = [], []
    for have, want in zip(image.shape[-2:], size):
        if have >= want:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(0, want))
        else:
            start = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(start, start + have))
    out[..., dst[0], dst[1]] = image[..., src[0], src[1]]
    return out


def _fit(image, size, fill):
    """Shrink or grow ``image`` to fit ``size`` keeping its aspect ratio, then pad."""
    h, w = image.shape[-2:]
    scale = min(size[0] / h, size[1] / w)
    inner = (min(size[0], max(1, round(h * scale))), min(size[1], max(1, round(w * scale))))
    return _crop_or_pad(_stretch(image, inner), size, fill)


def stretch_range(value, name):
    """A ``(low, high)`` range of stretch factors with ``0 < low <= high``."""
    low, high = checks.number_pair(value, name, 'stretch factors')
    if not 0 < low <= high:
        raise ConfigError(f'{name} must be (low, high) stretch factors with 0 < low <= high; '
                          f'received {value!r}')
    return low, high


class Resizer:
    """Base class of the resizers.

    Subclasses implement ``_resize(image, size)``; those that resize
    training images differently override :meth:`training` as well.
    Preprocessors call a resizer from several threads at once. Every
    subclass is registered by name so that a saved net can rebuild it from
    :meth:`state_dict`, which holds the plain attributes set in ``__init__``.

    Parameters
    ----------
    fill : int
        The grey level of space added around an image (255: white).

    Attributes
    ----------
    stretch_range : tuple of float or None
        A resizer that stretches training images at random by a factor in
        this range (per axis) says so here, so that an augmenting
        preprocessor can redraw the stretch every epoch on the training
        device instead of fixing it once.
    """

    stretch_range = None

    def __init__(self, fill=255):
        self.fill = check_fill(fill)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _RESIZERS[cls.__name__] = cls

    def training(self, image, size):
        """Resize a training image to ``size`` ``(height, width)``."""
        return self._resize(as_image(image), check_size(size))

    def prediction(self, image, size):
        """Resize a validation, test or unseen image to ``size``."""
        return self._resize(as_image(image), check_size(size))

    def resize_image(self, image, size, training=False):
        """Resize a Pillow image as :func:`~pydnn2.data.reader.open_image` reads it (grey
        or RGB) as :meth:`training` (or :meth:`prediction`) resizes its array; a
        resizer that can work on the Pillow image itself, and so save a copy, may
        override this, returning what the array method returns."""
        array = image_array(image)
        return (self.training if training else self.prediction)(array, size)

    def _resize(self, image, size):
        raise NotImplementedError(f'{type(self).__name__}._resize')

    def state_dict(self):
        """Return ``{'class': name, 'params': {...}}`` with the plain attributes."""
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()
                  if isinstance(v, (numbers.Number, str, tuple, list, type(None)))}
        return {'class': type(self).__name__, 'params': params}

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in self.state_dict()['params'].items())
        return f'{type(self).__name__}({args})'


def resizer_from_state(state):
    """Rebuild a resizer from its :meth:`Resizer.state_dict`.

    Only classes already defined (imported) can be named, so a saved file
    can never make pydnn2 run code.

    Raises
    ------
    DataError
        If the state names an unknown resizer class.
    """
    try:
        cls = _RESIZERS[state['class']] if state['class'] != 'Resizer' else Resizer
    except (KeyError, TypeError):
        raise DataError(f'unknown resizer state {state!r}; known resizer classes: '
                        f'{sorted(_RESIZERS)}') from None
    resizer = cls.__new__(cls)
    for key, value in state['params'].items():
        setattr(resizer, key, tuple(value) if isinstance(value, list) else value)
    return resizer


class StretchResizer(Resizer):
    """Stretch images to the target size, ignoring their aspect ratio.

    Examples
    --------
    >>> import numpy as np
    >>> StretchResizer().training(np.zeros((10, 40), np.uint8), (8, 8)).shape
    (8, 8)
    """

    def _resize(self, image, size):
        return _stretch(image, size)

    def resize_image(self, image, size, training=False):
        """A grey Pillow image stretched as it is (what :meth:`training` returns for its
        array, without the copy into an array and back)."""
        if type(self) is not StretchResizer or image.mode != 'L':
            return super().resize_image(image, size, training)
        h, w = check_size(size)
        if (image.height, image.width) != (h, w):
            image = image.resize((w, h), Image.Resampling.BILINEAR)
        return np.array(image)


class PreserveAspectRatioResizer(Resizer):
    """Scale images to fit the target size keeping their aspect ratio.

    The image is centred and the rest filled with ``fill``.
    """

    def _resize(self, image, size):
        return _fit(image, size, self.fill)


class ThresholdBoxStretchResizer(Resizer):
    """Crop to the box around all pixels darker than ``threshold``, then stretch.

    An image with no such pixel is stretched whole.

    Parameters
    ----------
    threshold : float
        Grey level in (0, 256]; darker pixels count as the object.
    fill : int
        Grey level of added space.
    """

    def __init__(self, threshold, fill=255):
        super().__init__(fill)
        self.threshold = check_threshold(threshold)

    def _resize(self, image, size):
        return _stretch(crop(image, threshold_box(dark_mask(image, self.threshold))), size)


class ThresholdBoxPreserveAspectRatioResizer(ThresholdBoxStretchResizer):
    """Crop to the box around all pixels darker than ``threshold``, then fit
    it into the target size keeping its aspect ratio (padding with ``fill``)."""

    def _resize(self, image, size):
        box = threshold_box(dark_mask(image, self.threshold))
        return _fit(crop(image, box), size, self.fill)


class ContiguousBoxStretchResizer(Resizer):
    """Crop to the box of the largest connected blob of dark pixels, then stretch.

    pydnn's rule: a pixel counts when ``255 - value > threshold`` (so the
    plankton setting ``threshold=2`` keeps everything darker than 253), blobs
    are 4-connected, and the largest is the one with the largest bounding box.
    An image with no such pixel is stretched whole.

    Parameters
    ----------
    threshold : float
        In [0, 255): how much darker than white a pixel must be to count.
    fill : int
        Grey level of added space.
    connectivity : {4, 8}
        Whether diagonal neighbours belong to the same blob (pydnn: 4).
    """

    def __init__(self, threshold, fill=255, connectivity=4):
        super().__init__(fill)
        self.threshold = checks.number(threshold, 'threshold', at_least=0, below=255,
                                       expected='a number in [0, 255): how much darker than '
                                                'white a pixel must be to count')
        self.connectivity = checks.one_of(connectivity, 'connectivity', (4, 8))

    def _box(self, image):
        return largest_blob_box(pydnn_dark_mask(image, self.threshold), self.connectivity)

    def _resize(self, image, size):
        return _stretch(crop(image, self._box(image)), size)


class ContiguousBoxPreserveAspectRatioResizer(ContiguousBoxStretchResizer):
    """Crop to the box of the largest connected blob of dark pixels, then fit
    it into the target size keeping its aspect ratio (padding with ``fill``)."""

    def _resize(self, image, size):
        return _fit(crop(image, self._box(image)), size, self.fill)


class StochasticStretchResizer(Resizer):
    """Stretch images, varying the stretch of training images at random.

    A training image is stretched to ``size * u`` with ``u`` drawn
    uniformly from ``rand_range`` for each axis, then centre-cropped or
    padded with ``fill`` back to ``size``: the object grows or shrinks by up
    to the range. Prediction images are stretched plainly. (pydnn drew ``u``
    from the empty range ``[rand_range[0], rand_range[0])``; here it is the
    whole range.)

    Given to :class:`pydnn2.preprocess.Rotator360`, the random stretch is
    redrawn every epoch on the training device (see ``stretch_range``).

    Parameters
    ----------
    rng : numpy.random.RandomState or numpy.random.Generator
        Source of the random factors.
    rand_range : tuple of float
        ``(low, high)`` stretch factors, ``0 < low <= high``, e.g. ``(0.9, 1.1)``.
    fill : int
        Grey level of added space.

    Examples
    --------
    >>> import numpy as np
    >>> resizer = StochasticStretchResizer(np.random.RandomState(0), (0.8, 1.2))
    >>> resizer.training(np.zeros((20, 20), np.uint8), (10, 10)).shape
    (10, 10)
    """

    def __init__(self, rng, rand_range, fill=255):
        super().__init__(fill)
        self.rng = rng
        self.rand_range = stretch_range(rand_range, 'rand_range')

    @property
    def stretch_range(self):
        """The range of random stretch factors, ``rand_range``."""
        return self.rand_range

    def training(self, image, size):
        """Stretch a training image by a random factor per axis, keeping ``size``."""
        image, size = as_image(image), check_size(size)
        if getattr(self, 'rng', None) is None:  # rebuilt from a state: no rng was saved
            self.rng = np.random.RandomState(0)
        factors = self.rng.uniform(self.rand_range[0], self.rand_range[1], size=2)
        stretched = tuple(max(1, int(round(s * f))) for s, f in zip(size, factors))
        return _crop_or_pad(_stretch(image, stretched), size, self.fill)

    def _resize(self, image, size):
        return _stretch(image, size)
