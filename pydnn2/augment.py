"""Image preprocessors: resize once, augment every epoch in batches on the device.

The preprocessors here take the sets of :func:`pydnn2.preprocess.split_training_data`
built over *lists* of raw images of any size (as read by
:class:`pydnn2.data.DirectoryLabeledImageSet`) and serve a net these channels:

``'images'``
    ``(C, H, W)`` float32 (``C`` = 1 for grey images), centred on the mean
    training image and divided by the training pixels' standard deviation.
``'shapes'``
    ``(2,)``: the original height and width of each image, standardised
    with the training set's mean and standard deviation. Resizing throws
    the size away; merging this channel into a net gives it back.
``'geometry'`` (:class:`Rotator360PlusGeometry` only)
    ``(8,)``: the simple shape statistics of :data:`~pydnn2.imageops.GEOMETRY_FEATURES`,
    standardised the same way.

Every statistic comes from the training set alone. Each raw image is
resized once (with Pillow, in threads) and cached as uint8; the per-epoch
augmentation of the training set (rotation, flips, stretch) then runs in
large batches (:func:`pydnn2.imageops.transform_images`: ``grid_sample``) on
``self.device``, which the net sets with ``pre.to(device)``. Validation and
test sets are never augmented.

Examples
--------
>>> import numpy as np
>>> from pydnn2.preprocess import split_training_data, StretchResizer
>>> rng = np.random.RandomState(0)
>>> images = [rng.randint(0, 256, (rng.randint(10, 30), 20), dtype=np.uint8)
...           for _ in range(50)]
>>> sets = split_training_data((images, np.arange(50) % 2), 8, 60, 20, 20)
>>> pre = Rotator360(sets, (16, 16), StretchResizer(), rng)
>>> x, y = pre.get_train()
>>> tuple(x['images'].shape), tuple(x['shapes'].shape), pre.channels
((30, 1, 16, 16), (30, 2), ('images', 'shapes'))
"""

import dataclasses
import numbers

import numpy as np
import torch

from .data import parallel_map
from .errors import ConfigError, DataError
from .imageops import (GEOMETRY_FEATURES, affine_matrices, geometry_features, principal_angle,
                       rotate_expand, transform_images)
from .preprocess import SET_NAMES, Preprocessor, as_labels
from .resize import Resizer, _check_fill, as_image, check_size, resizer_from_state

STATE_VERSION = 1
_SUB_OFFSETS = (0.0, 0.5, 0.25, 0.75)  # later passes of the schedule fall between grid angles


@dataclasses.dataclass
class Augmentation:
    """How training images change from epoch to epoch (plain, saved with the net)."""

    rotation_range: tuple = (0.0, 360.0)  # degrees [low, high); (0, 0) means no rotation
    rotation_step: float = 1.0  # every image sees each angle of this grid (rounded to fit the
    #                             range a whole number of times) over the epochs
    flip_lr: bool = True  # flip each image left-right with probability 1/2
    flip_ud: bool = False  # flip each image upside down with probability 1/2
    stretch: tuple = None  # (low, high) random stretch factor per axis, or None

    def __post_init__(self):
        low, high = _pair(self.rotation_range, 'rotation_range', 'angles in degrees')
        if not low <= high <= low + 360:
            raise ConfigError(f'rotation_range must be (low, high) with low <= high <= low + 360 '
                              f'degrees; received {self.rotation_range!r}')
        step = self.rotation_step
        if isinstance(step, bool) or not isinstance(step, numbers.Real) or not step > 0:
            raise ConfigError(f'rotation_step must be a positive number of degrees; '
                              f'received {step!r}')
        if self.stretch is not None:
            self.stretch = _pair(self.stretch, 'stretch', 'factors')
            if not 0 < self.stretch[0] <= self.stretch[1]:
                raise ConfigError(f'stretch must be (low, high) factors with 0 < low <= high; '
                                  f'received {self.stretch!r}')
        self.rotation_range = (low, high)
        self.rotation_step, self.flip_lr, self.flip_ud = float(step), bool(self.flip_lr), \
            bool(self.flip_ud)

    @property
    def num_angles(self):
        """Number of grid angles in the range (0 when there is no rotation)."""
        span = self.rotation_range[1] - self.rotation_range[0]
        return max(1, round(span / self.rotation_step)) if span > 0 else 0

    @property
    def active(self):
        """Whether training images change at all between epochs."""
        return bool(self.num_angles or self.flip_lr or self.flip_ud or self.stretch)


def _pair(value, name, what):
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value))
    if not ok:
        raise ConfigError(f'{name} must be a (low, high) pair of {what}; received {value!r}')
    return float(value[0]), float(value[1])


def _seed_from(rng):
    """A seed for the preprocessor's own generator, drawn from the user's ``rng``."""
    if rng is None:
        return 0
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return int(rng)
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(2 ** 31 - 1))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2 ** 31 - 1))
    raise ConfigError(f'rng must be a numpy RandomState, a numpy Generator, an int seed or None; '
                      f'received {type(rng).__name__}')


def _rng_state(rng):
    """A RandomState's state as plain data and a tensor."""
    state = rng.get_state(legacy=False)
    return {'key': torch.from_numpy(state['state']['key'].astype(np.int64)),
            'pos': int(state['state']['pos']), 'has_gauss': int(state['has_gauss']),
            'gauss': float(state['gauss'])}


def _set_rng_state(rng, state):
    rng.set_state({'bit_generator': 'MT19937',
                   'state': {'key': state['key'].numpy().astype(np.uint32), 'pos': state['pos']},
                   'has_gauss': state['has_gauss'], 'gauss': state['gauss']})


def _num_channels(image):
    return 1 if image.ndim == 2 else image.shape[0]


def _standardise(values, eps=1e-8):
    """Column means and standard deviations (1 where a column is constant)."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    return mean, np.where(std > eps, std, 1.0)


class ImagePreprocessor(Preprocessor):
    """Base class of the image preprocessors (see the module docstring).

    Subclasses choose the :class:`Augmentation` and whether to serve
    ``'geometry'``; this class resizes and caches the images, fits the
    statistics on the training set, augments training batches on
    ``self.device`` and saves its state as plain data.

    Parameters
    ----------
    data : tuple
        ``(train, valid, test)`` from :func:`~pydnn2.preprocess.split_training_data`,
        each ``(images, classes[, file_indices])`` with ``images`` a list of
        ``(H, W)`` or ``(C, H, W)`` arrays of grey levels 0..255.
    image_shape : tuple
        ``(height, width)`` the images are resized to.
    resizer : pydnn2.resize.Resizer
        How raw images are resized (e.g. ``StretchResizer()``).
    rng : numpy.random.RandomState, numpy.random.Generator, int or None
        Seeds the preprocessor's own generator (one draw), which drives the
        augmentation schedule.
    augmentation : Augmentation
        What changes between epochs.
    fill : int
        Grey level of space uncovered by rotations (white, 255, as in pydnn).
    orient : bool
        Turn every raw image (training and unseen alike) so that its dark
        mass lies horizontal before resizing (see :func:`~pydnn2.imageops.principal_angle`).
    geometry_threshold : float
        Grey level below which a pixel counts as dark for ``'geometry'``.
    chunk_size : int, optional
        Images per batch of the augmentation; by default sized to the device.
    progress : bool, optional
        Progress bars while resizing; by default for 500 images or more.
    """

    serves_geometry = False

    def __init__(self, data, image_shape, resizer, rng=None, augmentation=None, fill=255,
                 orient=False, geometry_threshold=128, chunk_size=None, progress=None):
        self.image_shape = check_size(image_shape)
        if not isinstance(resizer, Resizer):
            raise ConfigError(f'resizer must be a pydnn2 Resizer such as StretchResizer(); '
                              f'received {type(resizer).__name__}')
        self.resizer = resizer
        self.augmentation = augmentation or Augmentation()
        if self.augmentation.stretch is None and resizer.stretch_range is not None:
            self.augmentation = dataclasses.replace(self.augmentation,
                                                    stretch=resizer.stretch_range)
        self.fill, self.orient = _check_fill(fill), bool(orient)
        self.geometry_threshold = geometry_threshold
        self.chunk_size, self.progress = chunk_size, progress
        self._rng = np.random.RandomState(_seed_from(rng))
        self._sets = self._stats = self._offsets = self._channels = None
        self._epoch = 0
        self.set_data(data, refit=True)

    def _image_list(self, x, where, channels=None):
        """Validate raw images; all must have ``channels`` (default: the first's)."""
        if isinstance(x, dict):
            if 'images' not in x:
                raise DataError(f'the {where} has channels {sorted(x)}; expected an '
                                f"'images' channel of raw images")
            x = x['images']
        if isinstance(x, np.ndarray) and (x.ndim in (3, 4) or x.dtype == object):
            x = list(x)  # (N, H, W), (N, C, H, W) or N objects -> N images
        if not isinstance(x, (list, tuple)):
            raise DataError(f'the {where} must be a list of images; received '
                            f'{type(x).__name__}')
        images = [as_image(image, f'image {i} of the {where}') for i, image in enumerate(x)]
        for i, image in enumerate(images):
            channels = channels or _num_channels(image)
            if _num_channels(image) != channels:
                raise DataError(f'image {i} of the {where} has {_num_channels(image)} '
                                f'channel(s) (shape {image.shape}); expected {channels}')
        return images

    def _parse_sets(self, data, channels):
        if not isinstance(data, (tuple, list)) or len(data) != 3:
            raise DataError(f'{type(self).__name__} needs the three sets returned by '
                            f'split_training_data: (train, valid, test); received '
                            f'{type(data).__name__}')
        sets = []
        for name, part in zip(SET_NAMES, data):
            if not isinstance(part, (tuple, list)) or len(part) not in (2, 3):
                raise DataError(f'the {name} set must be (images, classes) or '
                                f'(images, classes, file_indices)')
            images = self._image_list(part[0], f'{name} set', channels)
            channels = channels or (_num_channels(images[0]) if images else None)
            y = as_labels(part[1], f'{name} classes')
            files = np.asarray(part[2] if len(part) == 3 else np.arange(len(images)), np.int64)
            if len(y) != len(images) or len(files) != len(images):
                raise DataError(f'the {name} set has {len(images)} images but {len(y)} classes '
                                f'and {len(files)} file indices')
            if not images and name != 'test':
                raise DataError(f'the {name} set is empty; it needs at least one image')
            sets.append((images, y, files))
        return sets

    def set_data(self, data, refit=False):
        """Attach new sets; with ``refit`` recompute the statistics from them.

        Images are resized once here and cached. A loaded net keeps its
        statistics (they are part of the trained model), so by default new
        data is standardised the way the net learned. The augmentation
        schedule is kept when the number of images is unchanged, else
        redrawn.
        """
        refit = refit or self._stats is None
        sets = self._parse_sets(data, None if refit else self._channels)
        self._sets = sets
        self._channels = _num_channels(sets[0][0][0])
        # a random stretch resizer's stretch is redrawn every epoch by the augmentation
        train_resize = (self.resizer.prediction if self.resizer.stretch_range is not None
                        else self.resizer.training)
        self._u8 = {name: self._resize_all(part[0], train_resize if name == 'train'
                                           else self.resizer.prediction, name)
                    for name, part in zip(SET_NAMES, sets)}
        self._raw_shapes = {name: self._shapes_of(part[0]) for name, part in zip(SET_NAMES, sets)}
        total = sum(len(part[0]) for part in sets)
        if self._offsets is None or len(self._offsets) != total:
            self._draw_schedule(total)
        if refit:
            self._fit()
        self._served = {}

    def _resize_all(self, images, resize, name='new'):
        """Raw images -> one uint8 tensor (N, C, H, W) on ``self.device``."""
        h, w = self.image_shape

        def one(image):
            if self.orient:
                image = rotate_expand(image, principal_angle(image), self.fill)
            out = np.asarray(resize(image, self.image_shape))
            if out.shape[-2:] != (h, w):
                raise DataError(f'{type(self.resizer).__name__} returned an image of shape '
                                f'{out.shape}; expected (..., {h}, {w})')
            return out

        resized = parallel_map(one, images, desc=f'resizing {name} images', progress=self.progress)
        if not resized:
            return torch.zeros((0, self._channels, h, w), dtype=torch.uint8, device=self.device)
        # N x ([C,] H, W) -> (N, C, H, W)
        stacked = np.stack(resized).reshape(len(resized), -1, h, w)
        return torch.from_numpy(stacked).to(self.device)

    def _shapes_of(self, images):
        """(N, 2) original heights and widths, plus geometry when served."""
        shapes = np.array([image.shape[-2:] for image in images], np.float64).reshape(-1, 2)
        if not self.serves_geometry:
            return {'shapes': shapes}
        geometry = parallel_map(lambda im: geometry_features(im, self.geometry_threshold),
                                images, desc='geometry', progress=self.progress)
        return {'shapes': shapes,
                'geometry': np.array(geometry, np.float64).reshape(-1, len(GEOMETRY_FEATURES))}

    @property
    def _shapes(self):
        shapes = {'images': (self._channels,) + self.image_shape, 'shapes': (2,)}
        if self.serves_geometry:
            shapes['geometry'] = (len(GEOMETRY_FEATURES),)
        return shapes

    def _draw_schedule(self, total):
        """Per-image angle offsets and the master offsets that move every epoch.

        Over ``k`` epochs (``k`` grid angles) every image sees every grid
        angle once; later rounds of ``k`` epochs are shifted by half, a
        quarter and three quarters of a step, as in pydnn.
        """
        k = max(1, self.augmentation.num_angles)
        self._offsets = self._rng.randint(0, k, size=total).astype(np.int64)
        self._master = np.concatenate([self._rng.permutation(k) + sub for sub in _SUB_OFFSETS])
        self._epoch = 0

    def angles(self, epoch, start=0, stop=None):
        """Rotation angles (degrees) of images ``start:stop`` at ``epoch``.

        Images are numbered train, then valid, then test (the order of
        :meth:`get_all_train`); the training set is ``start=0,
        stop=len(train)``. Nothing changes: this only reads the schedule.
        """
        aug = self.augmentation
        low, k = aug.rotation_range[0], aug.num_angles
        offsets = self._offsets[start:stop]
        if k == 0:
            return np.full(len(offsets), low)
        master = self._master[epoch % len(self._master)]
        return low + np.mod(offsets + master, k) * (aug.rotation_range[1] - low) / k

    def _draw_epoch(self, stop):
        """This epoch's transforms of images ``0:stop``; moves the schedule on."""
        aug, n = self.augmentation, stop
        angles = self.angles(self._epoch, 0, stop)
        flip_lr = self._rng.rand(n) < 0.5 if aug.flip_lr else None
        flip_ud = self._rng.rand(n) < 0.5 if aug.flip_ud else None
        stretch = aug.stretch
        scales = self._rng.uniform(stretch[0], stretch[1], size=(n, 2)) if stretch else None
        self._epoch += 1
        return affine_matrices(angles, self.image_shape, flip_lr, flip_ud, scales)

    def _fit(self):
        """Mean image and pixel std of the training set as the net will see it."""
        u8 = self._u8['train']
        n = len(u8)
        theta = affine_matrices(self._base_angles(n), self.image_shape)
        total = torch.zeros(u8.shape[1:], dtype=torch.float64, device=self.device)
        squares = torch.zeros_like(total)
        for start in range(0, n, 4096):
            x = transform_images(u8[start:start + 4096], theta[start:start + 4096], self.fill,
                                 chunk_size=self.chunk_size).double()
            total += x.sum(0)
            squares += (x * x).sum(0)
        mean, mean_sq = total / n, squares / n
        for flip, dim in ((self.augmentation.flip_lr, -1), (self.augmentation.flip_ud, -2)):
            if flip:  # expectation over random flips
                mean, mean_sq = (mean + mean.flip(dim)) / 2, (mean_sq + mean_sq.flip(dim)) / 2
        std = float((mean_sq - mean * mean).clamp(min=0).mean().sqrt())
        self._stats = {'image_mean': mean.float(), 'image_std': std if std > 1e-6 else 1.0}
        for channel, values in self._raw_shapes['train'].items():
            self._stats[f'{channel}_mean'], self._stats[f'{channel}_std'] = _standardise(values)

    def _base_angles(self, n):
        """Angles spread evenly over the range (a golden-ratio sequence), one per
        training image: a fair sample of the angles the net will be shown, for
        the mean image, that depends on the training images alone."""
        aug = self.augmentation
        if aug.num_angles == 0:
            return np.full(n, aug.rotation_range[0])
        step = (aug.rotation_range[1] - aug.rotation_range[0]) / aug.num_angles
        spread = np.floor(np.mod(np.arange(n) * 0.6180339887498949, 1.0) * aug.num_angles)
        return aug.rotation_range[0] + spread * step

    def _features(self, raw_shapes):
        return {channel: torch.from_numpy(((values - self._stats[f'{channel}_mean'])
                                           / self._stats[f'{channel}_std']).astype(np.float32))
                .to(self.device) for channel, values in raw_shapes.items()}

    def _normalised(self, u8):
        mean = self._stats['image_mean'].to(self.device)
        return (u8.float() - mean) / self._stats['image_std']

    def _combined(self, names):
        """Cached uint8 images, raw shapes and classes of several sets, concatenated."""
        key = ('raw',) + names
        if key not in self._served:
            u8 = self._u8[names[0]] if len(names) == 1 else torch.cat([self._u8[n] for n in names])
            raw = {c: np.concatenate([self._raw_shapes[n][c] for n in names])
                   for c in self._raw_shapes[names[0]]}
            y = np.concatenate([self._sets[SET_NAMES.index(n)][1] for n in names])
            self._served[key] = (u8, self._features(raw), torch.from_numpy(y).to(self.device))
        return self._served[key]

    def _augmented(self, names):
        self._require_data(f'get_{"all_" if len(names) > 1 else ""}train')
        if not self.augmentation.active:
            return self._plain(names)
        u8, features, y = self._combined(names)
        theta = self._draw_epoch(len(u8))
        images = transform_images(u8, theta, self.fill, self._stats['image_mean'],
                                  self._stats['image_std'], self.chunk_size)
        return {'images': images, **features}, y

    def _plain(self, names):
        key = ('plain',) + names
        self._require_data(f'get_{names[0]}')
        if key not in self._served:
            u8, features, y = self._combined(names)
            self._served[key] = ({'images': self._normalised(u8), **features}, y)
        return self._served[key]

    def get_train(self):
        """Return this epoch's augmented training set ``(x, y)``; moves the schedule on."""
        return self._augmented(('train',))

    def get_all_train(self):
        """Return train + valid + test, augmented, as one set (for final epochs).

        Validation and test images enter as resized for prediction.
        """
        return self._augmented(SET_NAMES)

    def get_valid(self):
        """Return the validation set ``(x, y)``, resized and standardised only."""
        return self._plain(('valid',))

    def get_test(self):
        """Return the test set ``(x, y)`` (possibly empty), resized and standardised only."""
        return self._plain(('test',))

    def get_raw_x(self):
        """Return ``[{'images': raw images}]`` for train, valid and test."""
        self._require_data('get_raw_x')
        return [{'images': images} for images, _, _ in self._sets]

    def preprocess(self, data):
        """Prepare unseen raw images for ``predict``.

        Parameters
        ----------
        data : dict or list
            ``{'images': list of raw arrays}`` (as from
            :class:`~pydnn2.data.UnlabeledImageSet`), or the list itself.

        Returns
        -------
        dict of torch.Tensor
            The channels, on ``self.device``.
        """
        images = self._image_list(data, 'data to predict', self._channels)
        u8 = self._resize_all(images, self.resizer.prediction)
        return {'images': self._normalised(u8), **self._features(self._shapes_of(images))}

    def to(self, device):
        """Serve tensors on ``device`` from now on (caches move once); returns ``self``."""
        super().to(device)
        if self.has_data():
            self._u8 = {name: t.to(self.device) for name, t in self._u8.items()}
        self._stats['image_mean'] = self._stats['image_mean'].to(self.device)
        self._served = {}
        return self

    def get_state(self):
        """The augmentation schedule and generator state, as plain data and tensors.

        Restoring it with :meth:`set_state` makes the following epochs
        exactly those that would have followed (for checkpoints).
        """
        return {'epoch': self._epoch, 'offsets': torch.from_numpy(self._offsets.copy()),
                'master': torch.from_numpy(self._master.copy()), 'rng': _rng_state(self._rng)}

    def set_state(self, state):
        """Restore the schedule saved by :meth:`get_state`."""
        offsets = state['offsets'].numpy().astype(np.int64)
        if self.has_data() and len(offsets) != sum(len(images) for images, _, _ in self._sets):
            raise DataError(f'the saved augmentation schedule covers {len(offsets)} images; '
                            f'the attached data holds '
                            f'{sum(len(images) for images, _, _ in self._sets)}')
        self._offsets, self._master = offsets, state['master'].numpy().astype(np.float64)
        self._epoch = int(state['epoch'])
        _set_rng_state(self._rng, state['rng'])

    def state_dict(self):
        """Everything needed to preprocess unseen images and resume the schedule.

        Plain data and CPU tensors only: ``{'version', 'image_shape',
        'channels', 'resizer', 'augmentation', 'options', 'stats',
        'schedule'}``.
        """
        stats = {k: torch.as_tensor(v).cpu() if not isinstance(v, float) else v
                 for k, v in self._stats.items()}
        augmentation = {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(self.augmentation).items()}
        return {'version': STATE_VERSION, 'image_shape': list(self.image_shape),
                'channels': self._channels, 'resizer': self.resizer.state_dict(),
                'augmentation': augmentation,
                'options': {'fill': self.fill, 'orient': self.orient,
                            'geometry_threshold': self.geometry_threshold,
                            'chunk_size': self.chunk_size},
                'stats': stats, 'schedule': self.get_state()}

    @classmethod
    def from_state(cls, state):
        """Rebuild the preprocessor (statistics and schedule, no data) from its state."""
        if state.get('version') != STATE_VERSION:
            raise DataError(f'{cls.__name__} state version {state.get("version")!r} is not '
                            f'supported; expected {STATE_VERSION}')
        self = cls.__new__(cls)
        self.image_shape, self._channels = tuple(state['image_shape']), state['channels']
        self.resizer = resizer_from_state(state['resizer'])
        aug = state['augmentation']
        self.augmentation = Augmentation(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in aug.items()})
        options = state['options']
        self.fill, self.orient = options['fill'], options['orient']
        self.geometry_threshold, self.chunk_size = options['geometry_threshold'], \
            options['chunk_size']
        self.progress, self._sets, self._served = None, None, {}
        self._stats = {k: v if k in ('image_mean', 'image_std') else v.numpy().astype(np.float64)
                       for k, v in state['stats'].items()}
        self._rng = np.random.RandomState(0)
        self.set_state(state['schedule'])
        return self


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
        :class:`~pydnn2.resize.StochasticStretchResizer` sets it from its
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

    ``'geometry'`` holds the :data:`~pydnn2.imageops.GEOMETRY_FEATURES` of each raw image
    (:func:`~pydnn2.imageops.geometry_features`), standardised with training statistics.
    Parameters as for :class:`Rotator360`, plus ``geometry_threshold``.
    """

    serves_geometry = True
