"""pydnn's three image preprocessors: Canonicalizer, Rotator360 and
Rotator360PlusGeometry, each an :class:`~pydnn2.preprocess.images.ImagePreprocessor`
with its own augmentation."""

from .augment import Augmentation
from .images import ImagePreprocessor


class Canonicalizer(ImagePreprocessor):
    """Resize and standardise images, with no augmentation by default.

    Optionally turns each image so that its dark mass lies horizontal
    (``orient=True``, pydnn's canonical orientation, done once with Pillow
    for training and unseen images alike) and flips training images at
    random each epoch.

    Parameters
    ----------
    data, image_shape, resizer, rng
        As for :class:`ImagePreprocessor`.
    orient : bool
        Turn images to their principal axis before resizing.
    flip_lr, flip_ud : bool
        Random left-right / upside-down flips of training images.
    **options
        ``fill``, ``chunk_size``, ``progress`` (see :class:`ImagePreprocessor`).

    Examples
    --------
    >>> pre = Canonicalizer(sets, (32, 32), StretchResizer(), rng)   # doctest: +SKIP
    >>> pre.shape_for('images'), pre.shape_for('shapes')              # doctest: +SKIP
    ((1, 32, 32), (2,))
    """

    def __init__(self, data, image_shape, resizer, rng=None, orient=False, flip_lr=False,
                 flip_ud=False, **options):
        augmentation = Augmentation((0.0, 0.0), 1.0, flip_lr, flip_ud)
        super().__init__(data, image_shape, resizer, rng, augmentation, orient=orient, **options)


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
    data, image_shape, resizer, rng
        As for :class:`ImagePreprocessor`.
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
        ``fill``, ``orient``, ``chunk_size``, ``progress`` (see
        :class:`ImagePreprocessor`).

    Examples
    --------
    >>> data = DirectoryLabeledImageSet(train_dir).build()            # doctest: +SKIP
    >>> sets = split_training_data(data, 64, 80, 15, 5)               # doctest: +SKIP
    >>> pre = Rotator360(sets, (64, 64), StretchResizer(), rng)       # doctest: +SKIP
    >>> x, y = pre.get_train()   # a new rotation of every image      # doctest: +SKIP
    """

    def __init__(self, data, image_shape, resizer, rng=None, rotation_range=(0, 360),
                 rotation_step=1, flip_lr=True, flip_ud=False, stretch=None, **options):
        augmentation = Augmentation(rotation_range, rotation_step, flip_lr, flip_ud, stretch)
        super().__init__(data, image_shape, resizer, rng, augmentation, **options)


class Rotator360PlusGeometry(Rotator360):
    """:class:`Rotator360` plus a ``'geometry'`` channel of shape statistics.

    ``'geometry'`` holds the :data:`~pydnn2.preprocess.imageops.GEOMETRY_FEATURES` of each raw image
    (:func:`~pydnn2.preprocess.imageops.geometry_features`), standardised with training statistics.
    Parameters as for :class:`Rotator360`, plus ``geometry_threshold``.
    """

    serves_geometry = True
