"""What changes in the training images from epoch to epoch, and when.

:class:`Augmentation` says what may change (rotation over a range of angles,
flips, a random stretch); :class:`Schedule` draws, epoch by epoch, the
affine transforms of every image, with pydnn's rotation schedule: each image
has its own angle offset and a master offset moves every epoch, so that over
``k`` epochs every image is seen at each of the ``k`` grid angles. Both are
plain data, saved with the net (the schedule through ``state_dict``), so
training resumes with exactly the epochs that would have followed.

>>> schedule = Schedule(Augmentation((0, 90), 30, flip_lr=False), seed=0)
>>> schedule.draw(4)
>>> sorted(float(schedule.angles(e, 0, 1)[0]) for e in range(3))  # every angle in turn
[0.0, 30.0, 60.0]
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .. import checks, rng as rngs
from ..errors import ConfigError
from .imageops import affine_matrices
from .resize import stretch_range

_SUB_OFFSETS = (0.0, 0.5, 0.25, 0.75)  # later passes of the schedule fall between grid angles


@dataclasses.dataclass
class Augmentation:
    """How training images change from epoch to epoch (plain, saved with the net)."""

    rotation_range: tuple = (0.0, 360.0)  # degrees [low, high); (0, 0) means no rotation
    rotation_step: float = 1.0  # every image sees each angle of this grid (rounded to fit the
    #                             range a whole number of times) over the epochs
    flip_lr: bool = True  # flip each image left-right with probability 1/2
    flip_ud: bool = False  # flip each image upside down with probability 1/2
    stretch: tuple | None = None  # (low, high) random stretch factor per axis, or None

    def __post_init__(self):
        low, high = checks.number_pair(self.rotation_range, 'rotation_range',
                                       'angles in degrees')
        if not low <= high <= low + 360:
            raise ConfigError(f'rotation_range must be (low, high) with low <= high <= low + 360 '
                              f'degrees; received {self.rotation_range!r}')
        self.rotation_range = (low, high)
        self.rotation_step = checks.number(self.rotation_step, 'rotation_step', above=0,
                                           expected='a positive number of degrees')
        if self.stretch is not None:
            self.stretch = stretch_range(self.stretch, 'stretch')
        self.flip_lr, self.flip_ud = bool(self.flip_lr), bool(self.flip_ud)

    @property
    def num_angles(self):
        """Number of grid angles in the range (0 when there is no rotation)."""
        span = self.rotation_range[1] - self.rotation_range[0]
        return max(1, round(span / self.rotation_step)) if span > 0 else 0

    @property
    def active(self):
        """Whether training images change at all between epochs."""
        return bool(self.num_angles or self.flip_lr or self.flip_ud or self.stretch)

    def to_plain(self):
        """The augmentation as plain data (lists for pairs)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_plain(cls, plain):
        """Rebuild from :meth:`to_plain`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in plain.items()})


class Schedule:
    """Draws each epoch's transforms of a fixed list of images.

    Parameters
    ----------
    augmentation : Augmentation
    seed : int
        Seeds the schedule's own generator.
    """

    def __init__(self, augmentation, seed):
        self.augmentation = augmentation
        self.rng = np.random.RandomState(seed)
        self.offsets = np.zeros(0, np.int64)
        self.master = np.zeros(1)
        self.epoch = 0

    def draw(self, total):
        """Draw per-image angle offsets for ``total`` images and the master offsets.

        Over ``k`` epochs (``k`` grid angles) every image sees every grid
        angle once; later rounds of ``k`` epochs are shifted by half, a
        quarter and three quarters of a step, as in pydnn.
        """
        k = max(1, self.augmentation.num_angles)
        self.offsets = self.rng.randint(0, k, size=total).astype(np.int64)
        self.master = np.concatenate([self.rng.permutation(k) + sub for sub in _SUB_OFFSETS])
        self.epoch = 0

    def angles(self, epoch, start=0, stop=None):
        """Rotation angles (degrees) of images ``start:stop`` at ``epoch``.

        Images are numbered train, then valid, then test. Nothing changes:
        this only reads the schedule.
        """
        aug = self.augmentation
        low, k = aug.rotation_range[0], aug.num_angles
        offsets = self.offsets[start:stop]
        if k == 0:
            return np.full(len(offsets), low)
        master = self.master[epoch % len(self.master)]
        return low + np.mod(offsets + master, k) * (aug.rotation_range[1] - low) / k

    def next_epoch(self, count, image_shape):
        """The affine matrices ``(count, 2, 3)`` of this epoch's transforms of
        images ``0:count``; moves the schedule on by one epoch."""
        aug = self.augmentation
        angles = self.angles(self.epoch, 0, count)
        flip_lr = self.rng.rand(count) < 0.5 if aug.flip_lr else None
        flip_ud = self.rng.rand(count) < 0.5 if aug.flip_ud else None
        scales = (self.rng.uniform(aug.stretch[0], aug.stretch[1], size=(count, 2))
                  if aug.stretch else None)
        self.epoch += 1
        return affine_matrices(angles, image_shape, flip_lr, flip_ud, scales)

    def base_angles(self, n, start=0):
        """Angles spread evenly over the range (a golden-ratio sequence), one per
        training image: a fair sample of the angles the net will be shown, for
        the mean image, that depends on the training images alone. Those of
        images ``start .. start + n - 1`` (a mean summed batch by batch)."""
        aug = self.augmentation
        if aug.num_angles == 0:
            return np.full(n, aug.rotation_range[0])
        step = (aug.rotation_range[1] - aug.rotation_range[0]) / aug.num_angles
        index = np.arange(start, start + n)
        spread = np.floor(np.mod(index * 0.6180339887498949, 1.0) * aug.num_angles)
        return aug.rotation_range[0] + spread * step

    def state_dict(self):
        """The schedule and its generator, as plain data and tensors."""
        return {'epoch': self.epoch, 'offsets': torch.from_numpy(self.offsets.copy()),
                'master': torch.from_numpy(self.master.copy()),
                'rng': rngs.numpy_state(self.rng)}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`."""
        self.offsets = state['offsets'].numpy().astype(np.int64)
        self.master = state['master'].numpy().astype(np.float64)
        self.epoch = int(state['epoch'])
        rngs.set_numpy_state(self.rng, state['rng'])
