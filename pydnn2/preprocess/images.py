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
``'geometry'`` (:class:`~pydnn2.preprocess.rotators.Rotator360PlusGeometry` only)
    ``(8,)``: the simple shape statistics of :data:`~pydnn2.preprocess.imageops.GEOMETRY_FEATURES`,
    standardised the same way.

Every statistic comes from the training set alone. Each raw image is
resized once (with Pillow, in threads) and cached as uint8 on the host; each
epoch draws the transforms of every training image (rotation, flips,
stretch: the augmentation schedule), and each batch is turned and
standardised as it is made, on the training device
(:func:`pydnn2.preprocess.imageops.transform_images`: ``grid_sample``), so a
rank under torchrun augments only its own rows. Validation and test sets are
never augmented. Given sets of image files (a streamed folder:
``DirectoryLabeledImageSet(base_dir, stream=True)``), nothing is cached: the
files are decoded and resized in ``DataLoader`` workers batch by batch, and
augmented on the device the same way (:mod:`pydnn2.preprocess.streaming`).

Examples
--------
>>> import numpy as np
>>> from pydnn2.preprocess import Rotator360, StretchResizer, split_training_data
>>> rng = np.random.RandomState(0)
>>> images = [rng.randint(0, 256, (rng.randint(10, 30), 20), dtype=np.uint8)
...           for _ in range(50)]
>>> sets = split_training_data((images, np.arange(50) % 2), 8, 60, 20, 20)
>>> pre = Rotator360(sets, (16, 16), StretchResizer(), rng)
>>> x, y = pre.get_train()
>>> tuple(x['images'].shape), tuple(x['shapes'].shape), pre.channels
((32, 1, 16, 16), (32, 2), ('images', 'shapes'))
"""

import dataclasses
import os

import numpy as np
import torch

from .. import checks, rng as rngs
from ..data import parallel_map
from ..data.imagefiles import ImageFiles
from ..errors import ConfigError, DataError
from .augment import Augmentation, Schedule
from .base import Preprocessor
from .decoded import DecodedCache
from .imageops import GEOMETRY_FEATURES, transform_images
from .imagesets import image_list, parse_sets, set_channels
from .loader import LoaderOptions
from .pixels import check_fill, check_size
from .resize import Resizer, resizer_from_state
from .rows import ArrayRows
from .sources import TensorSource
from .split import SET_NAMES
from .standardize import Standardize, Standardizer
from .streaming import FileItems, ImageFileSource, Preparation, image_sum, scan

STATE_VERSION = 2            # 2: pydnn's scaling, geometry and canonical orientation


def float_dtype(dtype):
    """``dtype`` as a numpy floating dtype (pydnn's dtype argument), or a ConfigError."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        result = None
    if result is None or result.kind != 'f':
        raise ConfigError(f"dtype must be a float type such as 'float32'; received {dtype!r}")
    return result


def _check_state_version(cls, state):
    """Refuse a state this version cannot serve the same way: unknown versions, and
    version 1 (pydnn2 0.1) states whose orientation or geometry changed meaning."""
    version = state.get('version')
    old_ok = version == 1 and not state['options']['orient'] and not cls.serves_geometry
    if version != STATE_VERSION and not old_ok:
        raise DataError(f'{cls.__name__} state version {version!r} cannot be served as it was '
                        f'trained: this pydnn2 reads version {STATE_VERSION} (and version 1 '
                        'without orient or geometry); train the net again')


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
        ``(H, W)`` or ``(C, H, W)`` arrays of grey levels 0..255, or
        :class:`~pydnn2.data.ImageFiles` (a streamed folder: the files are read
        batch by batch in ``DataLoader`` workers, see the module).
    image_shape : tuple
        ``(height, width)`` the images are resized to.
    resizer : pydnn2.preprocess.resize.Resizer
        How raw images are resized (e.g. ``StretchResizer()``).
    rng : numpy.random.RandomState, numpy.random.Generator, int or None
        Seeds the preprocessor's own generator (one draw), which drives the
        augmentation schedule.
    dtype : str or numpy dtype
        The float type of the served data (pydnn's fifth argument; a net
        computing in another precision converts it as it enters).
    augmentation : Augmentation
        What changes between epochs; by default nothing (the images as resized).
        pydnn's preprocessors (:class:`~pydnn2.preprocess.Rotator360` and the
        rest) choose their own.
    fill : int
        Grey level of space uncovered by rotations (white, 255, as in pydnn).
    orient : bool
        Put every raw image (training and unseen alike) in pydnn's canonical
        form before resizing: centred on a white square and turned to be least
        tall (see :func:`~pydnn2.preprocess.imageops.canonicalize`).
    geometry_threshold : float
        The contiguous-box threshold of ``'geometry'`` (pydnn: 2, pixels with
        ``255 - value > 2``).
    chunk_size : int, optional
        Images per batch of the augmentation; by default sized to the device.
    progress : bool, optional
        Progress bars while resizing; by default for 500 images or more.
    num_workers : int, optional
        ``DataLoader`` workers that read streamed image files (default: the
        machine's cores, at most 8; 0 reads in this process).
    decode_cache : str or os.PathLike, optional
        A folder where streamed sets keep their images decoded and resized
        (uint8, ``C x H x W`` bytes per image), so that each epoch after the
        first reads them instead of decoding the files: the speed of the
        in-memory path for a folder too large for memory (see
        :mod:`pydnn2.preprocess.decoded`). Not saved with the net.
    """

    serves_geometry = False
    num_workers = None
    decode_cache = None

    def __init__(self, data, image_shape, resizer, rng=None, dtype='float32', *,
                 augmentation=None, fill=255, orient=False, geometry_threshold=2,
                 chunk_size=None, progress=None, num_workers=None, decode_cache=None):
        self.image_shape = check_size(image_shape)
        self.dtype = float_dtype(dtype)
        if not isinstance(resizer, Resizer):
            raise ConfigError(f'resizer must be a pydnn2 Resizer such as StretchResizer(); '
                              f'received {type(resizer).__name__}')
        self.resizer = resizer
        self.augmentation = augmentation or Augmentation((0.0, 0.0), flip_lr=False)
        if self.augmentation.stretch is None and resizer.stretch_range is not None:
            self.augmentation = dataclasses.replace(self.augmentation,
                                                    stretch=resizer.stretch_range)
        self.fill, self.orient = check_fill(fill), bool(orient)
        self.geometry_threshold = geometry_threshold
        self.chunk_size, self.progress = chunk_size, progress
        self.num_workers = checks.integer(num_workers, 'num_workers', 0, none=True)
        if decode_cache is not None and not isinstance(decode_cache, (str, os.PathLike)):
            raise ConfigError(f'decode_cache must be a folder path; received '
                              f'{type(decode_cache).__name__}')
        self.decode_cache = decode_cache
        self._schedule = Schedule(self.augmentation, rngs.seed_from(rng, default=0))
        self._sets = self._stats = self._channels = None
        self.set_data(data, refit=True)

    def set_data(self, data, refit=False):
        """Attach new sets; with ``refit`` recompute the statistics from them.

        Images are resized once here and cached (image files are read once to
        measure them, see the module). A loaded net keeps its statistics (they
        are part of the trained model), so by default new data is
        standardised the way the net learned. The augmentation schedule is
        kept when the number of images is unchanged, else redrawn.
        """
        refit = refit or self._stats is None
        sets = parse_sets(data, None if refit else self._channels, type(self).__name__)
        self._channels = set_channels(sets[0][0])
        streamed = isinstance(sets[0][0], ImageFiles)
        sets, total = self._scan(sets, refit) if streamed else self._cache(sets, refit)
        self._sets = sets
        count = sum(len(part[0]) for part in sets)
        if len(self._schedule.offsets) != count:
            self._schedule.draw(count)
        if refit:
            self._fit(total, len(sets[0][0]))
        self._served, self._decoded = {}, {}

    def _preparation(self, name):
        """How the raw images of set ``name`` ('train', 'valid', 'test', 'new') are made
        ready; a random stretch resizer's stretch is redrawn every epoch by the
        augmentation, so its training images are resized plainly."""
        training = name == 'train' and self.resizer.stretch_range is None
        return Preparation(self.resizer, training, self.image_shape, self.fill, self.orient,
                           self.serves_geometry, self.geometry_threshold)

    def _cache(self, sets, refit):
        """Resize every image into the uint8 cache; the training images' sum at the
        mean pass's angles when ``refit``."""
        prepared = {name: self._prepare_all(part[0], self._preparation(name), name)
                    for name, part in zip(SET_NAMES, sets)}
        self._u8 = {name: u8 for name, (u8, _) in prepared.items()}
        self._raw_shapes = {name: raw for name, (_, raw) in prepared.items()}
        return sets, (image_sum(self._u8['train'], 0, self._schedule, self.image_shape,
                                self.fill, self.chunk_size) if refit else None)

    def _scan(self, sets, refit):
        """Read every file once (see the module): the sets without unreadable files, and
        the training images' sum at the mean pass's angles when ``refit``."""
        kept, total, self._u8, self._raw_shapes = [], None, None, {}
        for name, (files, y, index) in zip(SET_NAMES, sets):
            fit = ((self._schedule, self.fill, self.chunk_size) if refit and name == 'train'
                   else None)
            found = scan(files, self._preparation(name), self._loader_options(), fit,
                         f'reading {name} images', self.progress)
            if name == 'train' and not len(found.kept):
                raise DataError('the train set holds no readable image; it needs at least one')
            kept.append((files.take(found.kept), y[found.kept], index[found.kept]))
            self._raw_shapes[name] = found.raw
            total = found.total if fit is not None else total
        return kept, total

    def _loader_options(self):
        return LoaderOptions(num_workers=self.num_workers)

    def _prepare_all(self, images, preparation, name='new'):
        """Raw images -> (uint8 tensor (N, C, H, W) on the host, their raw
        ``'shapes'`` (N, 2) and, when served, ``'geometry'``)."""
        (h, w), n = self.image_shape, len(images)
        done = parallel_map(preparation, images, desc=f'preparing {name} images',
                            progress=self.progress)
        u8 = (np.stack([d[0] for d in done]).reshape(n, -1, h, w) if done    # -> (N, C, H, W)
              else np.zeros((0, self._channels, h, w), np.uint8))
        raw = {'shapes': np.array([image.shape[-2:] for image in images],
                                  np.float64).reshape(-1, 2)}
        if self.serves_geometry:
            raw['geometry'] = np.array([d[1] for d in done],
                                       np.float64).reshape(-1, len(GEOMETRY_FEATURES))
        return torch.from_numpy(u8), raw

    def shapes(self):
        """``{channel: row shape}``: ``'images'`` ``(C, H, W)``, ``'shapes'`` ``(2,)``
        and, when served, ``'geometry'``."""
        shapes = {'images': (self._channels,) + self.image_shape, 'shapes': (2,)}
        if self.serves_geometry:
            shapes['geometry'] = (len(GEOMETRY_FEATURES),)
        return shapes

    def angles(self, epoch, start=0, stop=None):
        """Rotation angles (degrees) of images ``start:stop`` at ``epoch``.

        Images are numbered train, then valid, then test (the order of
        :meth:`get_all_train`); the training set is ``start=0,
        stop=len(train)``. Nothing changes: this only reads the schedule.
        """
        return self._schedule.angles(epoch, start, stop)

    def _fit(self, total, n):
        """The mean training image as the net will see it (over its turns and flips),
        from ``total``, the sum of the ``n`` training images at the mean pass's angles;
        images are served as ``(x - mean) / 255``, as in pydnn."""
        mean = total / n
        for flip, dim in ((self.augmentation.flip_lr, -1), (self.augmentation.flip_ud, -2)):
            if flip:  # expectation over random flips
                mean = (mean + mean.flip(dim)) / 2
        self._stats = {'image_mean': mean.float(), 'image_std': 255.0}
        for channel, values in self._raw_shapes['train'].items():
            self._stats[f'{channel}_mean'], self._stats[f'{channel}_std'] = _standardise(values)

    def _features(self, raw_shapes):
        """The raw shapes (and geometry) standardised, as host tensors."""
        return {channel: torch.from_numpy(((values - self._stats[f'{channel}_mean'])
                                           / self._stats[f'{channel}_std']).astype(self.dtype))
                for channel, values in raw_shapes.items()}

    @property
    def _torch_dtype(self):
        return torch.from_numpy(np.zeros(0, self.dtype)).dtype

    def _mean_on(self, device):
        """The mean training image on ``device`` (moved once per device)."""
        cache = self.__dict__.setdefault('_mean_cache', {})
        key = (device, id(self._stats['image_mean']))
        if key not in cache:
            cache.clear()
            cache[key] = self._stats['image_mean'].to(device)
        return cache[key]

    def _serve(self, x, rows, theta):
        """A batch as read (uint8 images and standardised features, on the device)
        made into what the net sees: its images standardised, and turned, flipped and
        stretched by this epoch's transforms ``theta`` when augmenting."""
        u8 = x['images']
        mean = self._mean_on(u8.device)
        if theta is None:
            images = u8.float().sub_(mean).div_(self._stats['image_std'])
        else:
            images = transform_images(u8, theta[rows], self.fill, mean,
                                      self._stats['image_std'], self.chunk_size)
        return {**x, 'images': images.to(self._torch_dtype)}

    def source(self, name, augment=True):
        """The batches of set ``name`` ('train', 'valid', 'test', or 'all' for train +
        valid + test): images read from the resized cache (or image files read in
        ``DataLoader`` workers), augmented batch by batch for 'train' and 'all'
        (unless ``augment`` is False), standardised."""
        self._require_data(f'source({name!r})')
        names = SET_NAMES if name == 'all' else (name,)
        augmenting = augment and name in ('train', 'all') and self.augmentation.active
        key = (name, augmenting)
        if key not in self._served:
            labels = [self._sets[SET_NAMES.index(n)][1] for n in names]
            total = sum(len(y) for y in labels)
            begin = ((lambda: self._schedule.next_epoch(total, self.image_shape))
                     if augmenting else None)
            features = [self._features(self._raw_shapes[n]) for n in names]
            if self._u8 is None:
                parts = [self._file_items(n, y) for n, y in zip(names, labels)]
                rows = {c: torch.cat([f[c] for f in features]) for c in features[0]}
                self._served[key] = ImageFileSource(parts, rows, f'the {name} images',
                                                    self._serve, begin, self._loader_options())
            else:
                parts = [{'images': ArrayRows(self._u8[n]),
                          **{c: ArrayRows(v) for c, v in f.items()}}
                         for n, f in zip(names, features)]
                self._served[key] = TensorSource(parts, labels, serve=self._serve, begin=begin)
        return self._served[key]

    def _file_items(self, name, labels):
        """Set ``name``'s files as items, read through the decode cache when there is one."""
        files, preparation = self._sets[SET_NAMES.index(name)][0], self._preparation(name)
        if self.decode_cache is not None and name not in self._decoded:  # (one stat pass)
            self._decoded[name] = DecodedCache(self.decode_cache, files, preparation,
                                               files.channels)
        return FileItems(files, labels, preparation, self._decoded.get(name))

    def get_raw_x(self):
        """Return ``[{'images': raw images}]`` for train, valid and test."""
        self._require_data('get_raw_x')
        return [{'images': images} for images, _, _ in self._sets]

    def get_raw_y(self):
        """The classes of ``[train, valid, test]``."""
        self._require_data('get_raw_y')
        return [y for _, y, _ in self._sets]

    def labels(self, name):
        """The classes of set ``name`` ('all': train + valid + test), in order."""
        self._require_data(f'labels({name!r})')
        names = SET_NAMES if name == 'all' else (name,)
        return np.concatenate([self._sets[SET_NAMES.index(n)][1] for n in names])

    def get_files(self):
        """The file indices of ``[train, valid, test]``."""
        self._require_data('get_files')
        return [files for _, _, files in self._sets]

    def num_rows(self, name):
        """Images in set ``name`` ('all': train + valid + test)."""
        self._require_data(f'num_rows({name!r})')
        names = SET_NAMES if name == 'all' else (name,)
        return sum(len(self._sets[SET_NAMES.index(n)][1]) for n in names)

    def has_data(self):
        """Whether sets are attached (a loaded net's preprocessor has none)."""
        return self._sets is not None

    def export_dtype(self, channel):
        """An exported net takes the resized images as uint8, the rest as float32."""
        self._known(channel)
        return torch.uint8 if channel == 'images' else torch.float32

    def standardizer(self):
        """The standardisation of :meth:`prepare`'s arrays as a module: the images
        centred on the mean training image and divided by 255 (float32), the raw
        shapes (and geometry) by their training statistics (float64, as served)."""
        stats = self.state_dict()['stats']
        steps = {'images': Standardize(stats['image_mean'].float().numpy(),
                                       np.float32(stats['image_std']))}
        for channel in self.channels:
            if channel != 'images':
                steps[channel] = Standardize(np.asarray(stats[f'{channel}_mean'], np.float64),
                                             np.asarray(stats[f'{channel}_std'], np.float64))
        return Standardizer(steps)

    def preprocess(self, data):
        """Prepare unseen raw images for ``predict``.

        Parameters
        ----------
        data : dict or list
            ``{'images': list of raw arrays}`` (as from
            :class:`~pydnn2.data.UnlabeledImageSet`), or the list itself; image
            files (``UnlabeledImageSet(..., stream=True)``) are read here.

        Returns
        -------
        dict of torch.Tensor
            The channels, on ``self.device``.
        """
        u8, raw = self._prepared(data, 'data to predict')
        x = {'images': u8, **self._features(raw)}
        return self._serve({k: v.to(self.device) for k, v in x.items()}, None, None)

    def _prepared(self, data, what):
        images = image_list(data, what, self._channels, files=False)
        return self._prepare_all(images, self._preparation('new'))

    def prepare(self, data, what='data to predict'):
        """Unseen raw images as the net's graph sees them before standardisation:
        ``{'images': uint8 (N, C, H, W) resized for prediction, 'shapes': (N, 2)
        raw heights and widths[, 'geometry': (N, 7)]}``, numpy arrays."""
        u8, raw = self._prepared(data, what)
        return {'images': u8.cpu().numpy(), **raw}

    def to(self, device):
        """Return :meth:`preprocess`'s tensors on ``device``; returns ``self`` (the sets
        stay on the host: the loop moves each batch where it trains)."""
        return super().to(device)

    def random_state(self):
        """The augmentation schedule and generator state, as plain data and tensors.

        Restoring it with :meth:`set_random_state` makes the following epochs
        exactly those that would have followed (for checkpoints).
        """
        return self._schedule.state_dict()

    def set_random_state(self, state):
        """Restore the schedule saved by :meth:`random_state`."""
        covered, held = len(state['offsets']), sum(len(images) for images, _, _ in self._sets
                                                   or ())
        if self.has_data() and covered != held:
            raise DataError(f'the saved augmentation schedule covers {covered} images; '
                            f'the attached data holds {held}')
        self._schedule.load_state_dict(state)

    def state_dict(self):
        """Everything needed to preprocess unseen images and resume the schedule.

        Plain data and CPU tensors only: ``{'version', 'image_shape',
        'channels', 'resizer', 'augmentation', 'options', 'stats',
        'schedule'}``.
        """
        stats = {k: torch.as_tensor(v).cpu() if not isinstance(v, float) else v
                 for k, v in self._stats.items()}
        return {'version': STATE_VERSION, 'image_shape': list(self.image_shape),
                'channels': self._channels, 'resizer': self.resizer.state_dict(),
                'augmentation': self.augmentation.to_plain(),
                'options': {'fill': self.fill, 'orient': self.orient, 'dtype': self.dtype.name,
                            'geometry_threshold': self.geometry_threshold,
                            'chunk_size': self.chunk_size},
                'stats': stats, 'schedule': self.random_state()}

    @classmethod
    def from_state(cls, state):
        """Rebuild the preprocessor (statistics and schedule, no data) from its state."""
        _check_state_version(cls, state)
        self = cls.__new__(cls)
        self.image_shape, self._channels = tuple(state['image_shape']), state['channels']
        self.resizer = resizer_from_state(state['resizer'])
        self.augmentation = Augmentation.from_plain(state['augmentation'])
        options = state['options']
        self.fill, self.orient = options['fill'], options['orient']
        self.dtype = float_dtype(options.get('dtype', 'float32'))
        self.geometry_threshold, self.chunk_size = options['geometry_threshold'], \
            options['chunk_size']
        self.progress, self._sets, self._served, self._decoded = None, None, {}, {}
        self._stats = {k: v if k in ('image_mean', 'image_std') else v.numpy().astype(np.float64)
                       for k, v in state['stats'].items()}
        self._schedule = Schedule(self.augmentation, 0)
        self.set_random_state(state['schedule'])
        return self
