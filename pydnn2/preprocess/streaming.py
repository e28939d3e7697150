"""Image preprocessors over image files: decoded and resized in ``DataLoader`` workers.

Given sets of :class:`~pydnn2.data.ImageFiles` (a streamed folder:
``DirectoryLabeledImageSet(base_dir, stream=True)``), an image preprocessor
keeps no image in memory. It reads the files twice over:

- **once, when the sets are attached** (:func:`scan`): every file is decoded
  in ``DataLoader`` workers and its small figures kept (the raw height and
  width, and pydnn's geometry when served); the training images are also
  resized, turned to the mean pass's angles and summed (the mean image), a
  batch at a time. Unreadable files are raised, or left out with a warning
  (``on_error='skip'``), here, before training starts.
- **every pass** (:class:`FileItems` read through an :class:`ImageFileSource`,
  a :class:`~pydnn2.preprocess.loader.LoaderSource`): the workers decode and
  resize the batch's files to uint8; the batch reaches the training device
  and is augmented and standardised there by the preprocessor, exactly as
  a batch of its in-memory cache would be. So a streamed preprocessor serves
  the batches an in-memory one serves over the same files.

:class:`Preparation` is how one raw image is made ready (canonical turn,
resize, geometry), shared by both ways; it is plain data, so workers
started by ``spawn`` receive it too.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from .. import progress as progress_bars, tracebacks
from ..errors import DataError
from .imageops import affine_matrices, canonicalize, geometry_features, transform_images
from .loader import ItemSpec, LoaderOptions, LoaderSource, default_workers
from .resize import Resizer

#: Files per batch of the pass that attaches a streamed set.
SCAN_BATCH = 64
#: Images per ``transform_images`` call when summing the mean image.
SUM_CHUNK = 4096
#: The most rows per batch an evaluation pass reads, so that every worker has files.
READ_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Preparation:
    """How one raw image is made ready: put in canonical form (``orient``), resized
    to uint8 ``image_shape`` by ``resizer`` (as a training image with ``training``),
    and its geometry measured (``geometry``)."""

    resizer: Resizer            # resizes the raw image
    training: bool              # its training method (else its prediction method)
    image_shape: tuple          # (height, width)
    fill: int = 255             # grey level of new space
    orient: bool = False        # pydnn's canonical turn before resizing
    geometry: bool = False      # measure pydnn's geometry of the raw image
    threshold: float = 2        # the geometry's contiguous-box threshold

    def __call__(self, image, resized=True, geometry=True):
        """``(uint8 image resized or None, geometry row or None)`` of a raw image."""
        geometry = geometry and self.geometry
        canonical = (canonicalize(image, self.fill) if (self.orient and resized) or geometry
                     else None)
        out = None
        if resized:
            resize = self.resizer.training if self.training else self.resizer.prediction
            out = self._checked(resize(canonical[0] if self.orient else image,
                                       self.image_shape))
        features = geometry_features(image, self.threshold, canonical) if geometry else None
        return out, features

    def read(self, files, i):
        """File ``i`` of ``files`` (:class:`~pydnn2.data.ImageFiles`) read and resized:
        uint8 ``(C, H, W)``, as calling the preparation resizes it (the resizer given the
        Pillow image itself where it can: :meth:`~pydnn2.preprocess.Resizer.resize_image`)."""
        if self.orient:
            out = self(files.read(i), geometry=False)[0]
        else:
            out = self._checked(self.resizer.resize_image(files.open(i), self.image_shape,
                                                          self.training))
        if out.dtype != np.uint8 or not (out.flags.c_contiguous and out.flags.writeable):
            out = np.require(out, np.uint8, ('C', 'W'))      # (a fresh array needs nothing)
        return out.reshape((-1,) + self.image_shape)

    def _checked(self, out):
        out = np.asarray(out)
        if out.shape[-2:] != self.image_shape:
            raise DataError(f'{type(self.resizer).__name__} returned an image of shape '
                            f'{out.shape}; expected (..., {self.image_shape[0]}, '
                            f'{self.image_shape[1]})')
        return out


def image_sum(u8, first, schedule, image_shape, fill=255, chunk_size=None):
    """The sum (float64, ``(C, H, W)``) of images ``u8`` ``(N, C, H, W)``, each turned to
    its angle of the mean pass (:meth:`~pydnn2.preprocess.augment.Schedule.base_angles`
    of training images ``first .. first + N - 1``)."""
    theta = affine_matrices(schedule.base_angles(len(u8), first), image_shape)
    total = torch.zeros(u8.shape[1:], dtype=torch.float64, device=u8.device)
    for start in range(0, len(u8), SUM_CHUNK):
        total += transform_images(u8[start:start + SUM_CHUNK], theta[start:start + SUM_CHUNK],
                                  fill, chunk_size=chunk_size).double().sum(0)
    return total


@dataclasses.dataclass
class Scanned:
    """What :func:`scan` found in one set of files."""

    kept: np.ndarray            # positions of the readable files
    raw: dict                   # {'shapes': (n, 2) float64[, 'geometry': (n, 7)]}
    total: torch.Tensor | None = None  # the training images' sum at the mean pass's angles


class _ScanItems(Dataset):
    """Files decoded one by one: ``(position, uint8 image or None, raw (H, W),
    geometry or None, error message or None)``."""

    def __init__(self, files, preparation, resized):
        self.files, self.preparation, self.resized = files, preparation, resized

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        try:
            image = self.files.read(i)
        except DataError as error:
            return i, None, None, None, str(error)
        u8, geometry = self.preparation(image, resized=self.resized)
        return i, u8, image.shape[-2:], geometry, None


def _as_list(items):
    return items


def scan(files, preparation, options, fit=None, desc='reading images', progress=None):
    """One pass over ``files`` (see the module): the figures of each readable file and,
    with ``fit = (schedule, fill, chunk_size)``, the sum of the images resized and
    turned for the mean image. Returns a :class:`Scanned`."""
    items = _ScanItems(files, preparation, resized=fit is not None)
    loader = _scan_loader(items, options)
    kept, shapes, geometry, skipped, total = [], [], [], [], None
    show = len(files) >= 500 if progress is None else bool(progress)
    bar = progress_bars.progress_bar(len(files), desc, enabled=show, leave=True)
    for batch in _read(loader, desc):
        good = []
        for i, u8, shape, row, error in batch:
            if error is not None:
                if files.on_error != 'skip':
                    raise DataError(error)
                skipped.append(files.path(i))
                continue
            kept.append(i)
            shapes.append(shape)
            geometry.append(row)
            good.append(u8)
        if fit is not None and good:
            u8 = torch.from_numpy(np.stack(good).reshape((len(good), -1) + good[0].shape[-2:]))
            part = image_sum(u8, len(kept) - len(good), fit[0], preparation.image_shape,
                             fit[1], fit[2])
            total = part if total is None else total + part
        bar.update(len(batch))
    bar.close()
    if skipped:
        more = f' and {len(skipped) - 5} more' if len(skipped) > 5 else ''
        tracebacks.warn_at_user(f'skipped {len(skipped)} unreadable image file(s): '
                                f'{", ".join(map(repr, skipped[:5]))}{more}')
    raw = {'shapes': np.array(shapes, np.float64).reshape(-1, 2)}
    if preparation.geometry:
        raw['geometry'] = np.array(geometry, np.float64).reshape(len(kept), -1)
    return Scanned(np.array(kept, np.int64), raw, total)


def _read(loader, desc):
    """The loader's batches; a worker lost (killed by the system) is a DataError."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as exc:
            raise DataError(f'{desc}: a DataLoader worker failed: {exc}') from None
        yield batch


def _scan_loader(items, options):
    workers = default_workers() if options.num_workers is None else options.num_workers
    extra = {'prefetch_factor': options.prefetch_factor,
             'multiprocessing_context': options.multiprocessing_context} if workers else {}
    return DataLoader(items, batch_size=SCAN_BATCH, num_workers=workers,
                      collate_fn=_as_list, timeout=options.timeout, **extra)


class FileItems(Dataset):
    """One set's files as items ``(uint8 image (C, H, W), class)``: each file decoded
    and resized when read (in a ``DataLoader`` worker).

    Parameters
    ----------
    files : pydnn2.data.ImageFiles
    labels : array of int64
    preparation : Preparation
    cache : pydnn2.preprocess.decoded.DecodedCache, optional
        Rows already decoded, read instead of the files (and written on a miss).
    """

    def __init__(self, files, labels, preparation, cache=None):
        self.files, self.labels = files, np.asarray(labels, np.int64)
        self.preparation, self.cache = preparation, cache

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        image = None if self.cache is None else self.cache.get(i)
        if image is None:
            image = self.preparation.read(self.files, i)
            if self.cache is not None:
                self.cache.put(i, image)
        return torch.from_numpy(image), int(self.labels[i])


class ImageFileSource(LoaderSource):
    """The batches of one or more sets of files (train + valid + test for final epochs):
    the images read through ``DataLoader`` workers (a
    :class:`~pydnn2.preprocess.loader.LoaderSource`), the other channels, measured
    when the files were attached, taken from memory by row.

    Parameters
    ----------
    parts : list of FileItems
        Served as one set, rows numbered part after part.
    features : dict
        ``{channel: tensor (rows, k)}``: the other channels, standardised, one row
        per file of all the parts.
    name : str
        How errors name the set (e.g. ``'the training images'``).
    serve, begin : callable
        As for :class:`~pydnn2.preprocess.sources.TensorSource`.
    options : LoaderOptions
    """

    def __init__(self, parts, features, name, serve, begin=None, options=None):
        dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        first = parts[0]
        spec = ItemSpec({'images': ((first.files.channels,) + first.preparation.image_shape,
                                    'int')}, False)
        super().__init__(dataset, spec, 'images', name, serve=serve,
                         options=options or LoaderOptions(), begin=begin, draws=False)
        self.features = features
        self._labels = np.concatenate([p.labels for p in parts])

    def labels(self):
        """The classes of every row, in order."""
        return self._labels

    def batches(self, plan):
        """The pass ``plan`` asks for; an evaluation pass from its start comes in batches
        of at most :data:`READ_BATCH` rows (the rows in the same order), since a
        worker reads a whole batch: one batch of thousands would keep the other
        workers idle."""
        if not plan.whole_batches and plan.start == 0 and plan.batch_size > READ_BATCH:
            plan = dataclasses.replace(plan, batch_size=READ_BATCH)
        return super().batches(plan)

    def _serve(self, x, rows, epoch):
        """The images read and the batch's rows of the other channels, made into what the
        net sees by ``serve(x, rows, epoch)`` (as a
        :class:`~pydnn2.preprocess.sources.TensorSource` calls it)."""
        device = x['images'].device
        x.update({name: values.index_select(0, rows).to(device, non_blocking=True)
                  for name, values in self.features.items()})
        return self.serve(x, rows, epoch)
