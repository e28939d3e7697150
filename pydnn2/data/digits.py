"""Data sets that need no download: scikit-learn's digits, as arrays or as an
image folder written to disk."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    from sklearn.datasets import load_digits as sk_load_digits   # slow to import: on use

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None, :, :]  # (N, 8, 8) -> (N, 1, 8, 8)
    classes = bunch.target.astype(np.int64)
    return images, classes, np.arange(len(classes), dtype=np.int64)


# class folders; their sorted order is the class numbering
DIGIT_FOLDERS = ('0-zero', '1-one', '2-two', '3-three', '4-four', '5-five', '6-six', '7-seven',
                 '8-eight', '9-nine')
DIGIT_MAX_ANGLE = 30  # degrees either way


def _draw_digit(digit_image, digit, rng):
    """A digit dark on white, at a random size (larger for larger digits), turned."""
    grey = (255 - digit_image * 255 / 16).astype(np.uint8)  # ink 0..16 -> grey 255..0
    side = int(rng.randint(14, 22) + 2 * digit)
    image = Image.fromarray(grey).resize((side, int(side * rng.uniform(0.8, 1.2))),
                                         Image.Resampling.BILINEAR)
    image = image.rotate(rng.uniform(-DIGIT_MAX_ANGLE, DIGIT_MAX_ANGLE),
                         Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    noise = rng.randint(-12, 12, size=(image.height, image.width))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))


def write_digit_images(root: str | os.PathLike, num_images: int | None = None,
                       num_unlabeled: int = 100, seed: int = 0) -> tuple[str, dict[str, Any]]:
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
    images, classes, _ = load_digits()
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(classes))[:num_images]
    unlabeled, truth = os.path.join(root, 'unlabeled'), {}
    os.makedirs(unlabeled, exist_ok=True)
    for n, index in enumerate(order):
        digit = int(classes[index])
        image = _draw_digit(images[index, 0].astype(np.float64), digit, rng)
        if n < num_unlabeled:
            name = f'unseen_{n:04d}.png'
            image.save(os.path.join(unlabeled, name))
            truth[name] = digit
            continue
        folder = os.path.join(root, 'train', DIGIT_FOLDERS[digit])
        os.makedirs(folder, exist_ok=True)
        image.save(os.path.join(folder, f'{index:04d}' + ('.png' if n % 2 else '.jpg')))
    return unlabeled, truth
