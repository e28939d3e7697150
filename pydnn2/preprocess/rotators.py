"""pydnn's three image preprocessors: Canonicalizer, Rotator360 and
Rotator360PlusGeometry, each an :class:`~pydnn2.preprocess.images.ImagePreprocessor`
with pydnn's augmentation and channels.

All three take pydnn's arguments in pydnn's order,
``(data, image_shape, resizer, rng, dtype)``, and serve images as
``(x - mean training image) / 255``; the options pydnn2 adds are keywords.
"""

from .augment import Augmentation
from .images import ImagePreprocessor


class Canonicalizer(ImagePreprocessor):
    """Put every image in pydnn's canonical form; flip training images every epoch.

    Each raw image (training, validation, test and unseen alike) is centred on
    a white square and turned to be least tall, as pydnn's Canonicalizer did
    (``orient``); training images are then flipped left-right and upside down
    at random every epoch. Serves ``'images'``, ``'geometry'`` (pydnn's seven
    values, see :class:`Rotator360PlusGeometry`) and ``'shapes'``.

    Parameters
    ----------
    data, image_shape, resizer, rng, dtype
        As for :class:`~pydnn2.preprocess.images.ImagePreprocessor`.
    orient : bool
        The canonical turn (pydnn: always).
    flip_lr, flip_ud : bool
        Random left-right / upside-down flips of training images (pydnn: both).
    **options
        ``fill``, ``geometry_threshold``, ``chunk_size``, ``progress``.

    Examples
    --------
    >>> pre = Canonicalizer(sets, (32, 32), StretchResizer(), rng)   # doctest: +SKIP
    >>> pre.shape_for('images'), pre.shape_for('geometry')            # doctest: +SKIP
    ((1, 32, 32), (7,))
    """

    serves_geometry = True

    def __init__(self, data, image_shape, resizer, rng=None, dtype='float32', *, orient=True,
                 flip_lr=True, flip_ud=True, **options):
        augmentation = Augmentation((0.0, 0.0), 1.0, flip_lr, flip_ud)
        super().__init__(data, image_shape, resizer, rng, dtype, augmentation=augmentation,
                         orient=orient, **options)


class Rotator360(ImagePreprocessor):
    """Rotate (and flip) training images anew every epoch, as pydnn's Rotator360.

    Each training image has its own angle; a master offset added to all of
    them moves every epoch, so that over ``k`` epochs (``k`` angles in
    ``rotation_range`` at ``rotation_step``: 360 by default) every image is
    seen at every angle; following rounds fall between the grid angles.
    Each image is also flipped left-right at random. The rotations run in
    batches on ``self.device``. Serves ``'images'`` and ``'shapes'``.

    Parameters
    ----------
    data, image_shape, resizer, rng, dtype
        As for :class:`~pydnn2.preprocess.images.ImagePreprocessor`.
    rotation_range : tuple
        ``(low, high)`` degrees; use e.g. ``(-15, 15)`` for data that is
        not rotation-invariant, ``(0, 0)`` for none.
    rotation_step : float
        Spacing of the angle grid in degrees.
    flip_lr, flip_ud : bool
        Random left-right / upside-down flips of training images.
    stretch : tuple, optional
        ``(low, high)`` random stretch per axis, redrawn every epoch. A
        :class:`~pydnn2.preprocess.resize.StochasticStretchResizer` sets it from its
        ``rand_range`` (the cached images are then plainly stretched).
    **options
        ``fill``, ``orient``, ``chunk_size``, ``progress``, ``num_workers``,
        ``decode_cache`` (see
        :class:`~pydnn2.preprocess.images.ImagePreprocessor`).

    Examples
    --------
    >>> data = DirectoryLabeledImageSet(train_dir).build()            # doctest: +SKIP
    >>> sets = split_training_data(data, 64, 80, 15, 5)               # doctest: +SKIP
    >>> pre = Rotator360(sets, (64, 64), StretchResizer(), rng)       # doctest: +SKIP
    >>> x, y = pre.get_train()   # a new rotation of every image      # doctest: +SKIP
    """

    def __init__(self, data, image_shape, resizer, rng=None, dtype='float32', *,
                 rotation_range=(0, 360), rotation_step=1, flip_lr=True, flip_ud=False,
                 stretch=None, **options):
        augmentation = Augmentation(rotation_range, rotation_step, flip_lr, flip_ud, stretch)
        super().__init__(data, image_shape, resizer, rng, dtype, augmentation=augmentation,
                         **options)


class Rotator360PlusGeometry(Rotator360):
    """:class:`Rotator360` plus pydnn's ``'geometry'`` channel.

    ``'geometry'`` holds pydnn's seven values of each raw image
    (:data:`~pydnn2.preprocess.imageops.GEOMETRY_FEATURES`): its height and
    width, the height and width of the largest contiguous blob of its
    canonical form, the angle of that form, and its two flip flags
    (:func:`~pydnn2.preprocess.imageops.geometry_features`), standardised
    with training statistics. Parameters as for :class:`Rotator360`, plus
    ``geometry_threshold``.
    """

    serves_geometry = True
