"""A plankton-like image folder, generated: 121 classes of grey shapes on white.

pydnn was written for the Kaggle plankton data (121 classes; small grey
organisms of very different sizes on a white background, one folder per
class, and a folder of unlabelled test images). That data cannot be
downloaded here, so :func:`write_plankton_images` draws a stand-in with the
same layout: each class is a kind of shape (ellipse, rod, ring, cross, star,
...) with its own proportions, size and grey level; every image turns it at
random, varies its size, and adds a few specks of dirt, as microscope images
have.

Examples
--------
>>> import tempfile
>>> train_dir, test_dir = write_plankton_images(tempfile.mkdtemp(), per_class=2,
...                                             num_unlabeled=3, num_classes=4)
>>> sorted(os.listdir(train_dir))
['ellipse_00', 'ellipse_01', 'ellipse_02', 'ellipse_03']
>>> len(os.listdir(test_dir))
3
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from .. import checks
from .reader import parallel_map

KINDS = ('ellipse', 'rod', 'ring', 'cross', 'star', 'triangle', 'crescent', 'chain',
         'diamond', 'comb', 'blob')     # eleven kinds of eleven variants: 121 classes


def class_names(num_classes: int = 121) -> list[str]:
    """The class folder names: ``<kind>_<variant>``, sorted as folders are."""
    return sorted(f'{KINDS[i // 11 % len(KINDS)]}_{i % 11:02d}' for i in range(num_classes))


def _polygon(draw, centre, radii, points, grey):
    angles = np.linspace(0, 2 * np.pi, len(radii) * points, endpoint=False)
    r = np.resize(radii, len(angles))
    xy = [(centre[0] + a * np.cos(t), centre[1] + a * np.sin(t)) for a, t in zip(r, angles)]
    draw.polygon(xy, fill=grey)


def _draw_kind(draw, kind, c, s, aspect, grey):
    """One organism of ``kind`` about ``s`` pixels across, centred at ``c``."""
    w, h = s, s * aspect
    box = (c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2)
    if kind in ('ellipse', 'blob'):
        draw.ellipse(box, fill=grey)
        if kind == 'blob':
            draw.ellipse((c[0], c[1] - h / 2, c[0] + w * 0.7, c[1] + h * 0.1), fill=grey)
    elif kind == 'rod':
        draw.rounded_rectangle((c[0] - w / 2, c[1] - h / 8, c[0] + w / 2, c[1] + h / 8),
                               radius=max(1, h / 8), fill=grey)
    elif kind == 'ring':
        draw.ellipse(box, outline=grey, width=max(2, int(s / 8)))
    elif kind == 'cross':
        draw.rectangle((c[0] - w / 2, c[1] - h / 10, c[0] + w / 2, c[1] + h / 10), fill=grey)
        draw.rectangle((c[0] - w / 10, c[1] - h / 2, c[0] + w / 10, c[1] + h / 2), fill=grey)
    elif kind in ('star', 'diamond', 'triangle'):
        points = {'star': 5, 'diamond': 2, 'triangle': 3}[kind]
        radii = (s / 2, s / 5) if kind == 'star' else (s / 2, s * aspect / 2)
        _polygon(draw, c, radii if kind != 'triangle' else (s / 2,), points, grey)
    elif kind == 'crescent':
        draw.ellipse(box, fill=grey)
        draw.ellipse((box[0] + w * 0.3, box[1], box[2] + w * 0.3, box[3]), fill=255)
    elif kind == 'chain':
        for k in range(4):
            x = c[0] - w / 2 + k * w / 4
            draw.ellipse((x, c[1] - w / 10, x + w / 4, c[1] + w / 10), fill=grey)
    else:                                                       # comb
        draw.rectangle((c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] - h / 3), fill=grey)
        for k in range(5):
            x = c[0] - w / 2 + k * w / 4.5
            draw.rectangle((x, c[1] - h / 2, x + w / 12, c[1] + h / 2), fill=grey)


def draw_organism(label: int, rng: np.random.RandomState) -> np.ndarray:
    """One grey image of class ``label`` (an index into :func:`class_names`'s order
    of drawing), on white, of its own size."""
    kind, variant = KINDS[label // 11 % len(KINDS)], label % 11
    size = (14 + 6 * (variant % 4)) * rng.uniform(0.75, 1.3)      # the organism, in pixels
    aspect = 0.35 + 0.12 * (variant // 4 + variant % 3)
    grey = int(40 + 12 * (variant % 6) + rng.randint(-8, 9))
    side = int(size * rng.uniform(1.3, 2.2)) + 8
    image = Image.new('L', (side, int(side * rng.uniform(0.8, 1.25))), 255)
    draw = ImageDraw.Draw(image)
    _draw_kind(draw, kind, (image.width / 2, image.height / 2), size, aspect, grey)
    image = image.rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR, fillcolor=255)
    pixels = np.asarray(image).copy()
    for _ in range(rng.randint(0, 3)):                          # specks of dirt
        y, x = rng.randint(0, pixels.shape[0]), rng.randint(0, pixels.shape[1])
        pixels[y:y + 2, x:x + 2] = rng.randint(120, 220)
    noise = rng.randint(-6, 7, pixels.shape)
    return np.clip(pixels.astype(np.int16) + noise * (pixels < 250), 0, 255).astype(np.uint8)


def _write(job):
    path, label, seed = job
    Image.fromarray(draw_organism(label, np.random.RandomState(seed))).save(path)


def write_plankton_images(root: str | os.PathLike, per_class: int = 10, num_unlabeled: int = 100,
                          num_classes: int = 121, seed: int = 0,
                          progress: bool | None = None) -> tuple[str, str]:
    """Write a plankton-like labelled folder and an unlabelled one under ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to write into (created if needed): ``root/train/<class>/`` holds
        ``per_class`` JPEG images per class, ``root/test/`` the unlabelled ones.
    per_class : int
        Images per class.
    num_unlabeled : int
        Images in ``root/test`` (their classes cycle through all of them).
    num_classes : int
        Classes, at most 121 (pydnn's plankton had 121).
    seed : int
        Seeds every image; the same arguments write the same folders.
    progress : bool, optional
        Show a progress bar (by default for 500 images or more).

    Returns
    -------
    (str, str)
        The labelled folder and the unlabelled folder.
    """
    per_class = checks.integer(per_class, 'per_class', 1)
    num_unlabeled = checks.integer(num_unlabeled, 'num_unlabeled', 0)
    num_classes = checks.integer(num_classes, 'num_classes', 2, maximum=len(KINDS) * 11)
    train_dir, test_dir = os.path.join(root, 'train'), os.path.join(root, 'test')
    names = class_names(num_classes)
    jobs = []
    for name in names:
        os.makedirs(os.path.join(train_dir, name), exist_ok=True)
        code = _code(name)
        jobs += [(os.path.join(train_dir, name, f'{code * 100_000 + k + 1}.jpg'), code,
                  seed * 10_000_019 + code * 100_003 + k) for k in range(per_class)]
    os.makedirs(test_dir, exist_ok=True)
    jobs += [(os.path.join(test_dir, f'{k + 1}.jpg'), _code(names[k % num_classes]),
              seed * 10_000_019 + 99_000_000 + k) for k in range(num_unlabeled)]
    parallel_map(_write, jobs, desc='drawing plankton', progress=progress)
    return train_dir, test_dir


def _code(name):
    """The drawing index of a class name (its kind and variant)."""
    kind, variant = name.rsplit('_', 1)
    return KINDS.index(kind) * 11 + int(variant)
