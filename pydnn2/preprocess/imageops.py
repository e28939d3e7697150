"""Image operations for the preprocessors: batched affine transforms on the device,
and the orientation and shape statistics of raw images.

:func:`transform_images` turns, flips and stretches a whole batch of
equally sized images at once with ``grid_sample`` on the device the batch is
on; :func:`affine_matrices` builds its per-image matrices. The raw-image
helpers (:func:`canonicalize`, :func:`geometry_features`) work on one numpy
image of any size, as pydnn's did.

Examples
--------
>>> import numpy as np, torch
>>> image = torch.from_numpy(np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4))
>>> out = transform_images(image, affine_matrices([90], (4, 4)))
>>> out[0, 0, 0].tolist()  # a quarter turn counter-clockwise: the last column on top
[3.0, 7.0, 11.0, 15.0]
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .boxes import largest_blob_box
from .pixels import as_image, pydnn_dark_mask

GEOMETRY_FEATURES = ('height', 'width', 'box_height', 'box_width', 'angle', 'flip_ud',
                     'flip_lr')


def affine_matrices(angles, size, flip_lr=None, flip_ud=None, scales=None):
    """Sampling matrices ``theta`` (N, 2, 3) for :func:`transform_images`.

    The transform stretches an image about its centre by ``scales``, turns
    it ``angles`` degrees counter-clockwise, then flips it. ``theta`` maps
    output coordinates to input coordinates in ``affine_grid``'s normalised
    frame, corrected for non-square images.

    Parameters
    ----------
    angles : ndarray, shape (N,)
    size : tuple
        ``(height, width)`` of the images.
    flip_lr, flip_ud : ndarray of bool, shape (N,), optional
    scales : ndarray, shape (N, 2), optional
        ``(vertical, horizontal)`` stretch factors.
    """
    h, w = size
    rad = np.deg2rad(np.asarray(angles, np.float64))
    c, s = np.cos(rad), np.sin(rad)
    n = len(rad)
    fx = np.where(flip_lr, -1.0, 1.0) if flip_lr is not None else np.ones(n)
    fy = np.where(flip_ud, -1.0, 1.0) if flip_ud is not None else np.ones(n)
    sy, sx = (np.ones(n), np.ones(n)) if scales is None else np.asarray(scales, np.float64).T
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0] = c * fx / sx
    theta[:, 0, 1] = -s * (h / w) * fy / sx
    theta[:, 1, 0] = s * (w / h) * fx / sy
    theta[:, 1, 1] = c * fy / sy
    return torch.from_numpy(theta.astype(np.float32))


def _grid(theta, size):
    """``affine_grid(theta, size, align_corners=False)``, with one broadcast add."""
    h, w = size
    xs = ((torch.arange(w, device=theta.device) * 2 + 1) / w - 1).view(1, 1, 1, w)
    ys = ((torch.arange(h, device=theta.device) * 2 + 1) / h - 1).view(1, 1, h, 1)
    a, b, c = (theta[:, :, k, None, None] for k in range(3))  # (N, 2, 3) -> 3 x (N, 2, 1, 1)
    grid = a * xs + (b * ys + c)  # (N, 2, 1, W) + (N, 2, H, 1) -> (N, 2, H, W)
    return grid.permute(0, 2, 3, 1)  # (N, 2, H, W) -> (N, H, W, 2), a strided view


def _auto_chunk(size, device):
    budget = 2 ** 24 if torch.device(device).type == 'cuda' else 2 ** 20  # pixels per batch
    return max(1, budget // (size[0] * size[1]))


def transform_images(images, theta, fill=255, mean=None, std=1.0, chunk_size=None):
    """Resample a batch of images through affine transforms, in chunks.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W)
        uint8 (or float) grey levels, on any device.
    theta : torch.Tensor, shape (N, 2, 3)
        From :func:`affine_matrices`.
    fill : float
        Grey level of the space uncovered by the transform.
    mean : torch.Tensor, shape (C, H, W), optional
        Subtracted from the result, which is then divided by ``std``.
    std : float
    chunk_size : int, optional
        Images per ``grid_sample`` call; by default about a million pixels
        on a CPU and 16 million on a GPU.

    Returns
    -------
    torch.Tensor of float32, shape (N, C, H, W), on the device of ``images``.
    """
    n, size = images.shape[0], tuple(images.shape[-2:])
    chunk = chunk_size or _auto_chunk(size, images.device)
    theta = theta.to(images.device)
    base = torch.full(images.shape[1:], float(fill), device=images.device)
    if mean is not None:
        base = base - mean.to(images.device)
    base = base / std
    out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        # sample (fill - x) with zero padding, so uncovered space comes back as fill
        inverted = float(fill) - images[start:stop]  # uint8 -> float32
        sampled = F.grid_sample(inverted, _grid(theta[start:stop], size), mode='bilinear',
                                padding_mode='zeros', align_corners=False)
        torch.add(base, sampled, alpha=-1.0 / std, out=out[start:stop])  # (fill - mean - x) / std
    return out


def stat_height(image):
    """pydnn's measure of how tall the dark mass of a grey image is: the darkness
    of each row times its squared distance from the median row."""
    rows = (255.0 - image.astype(np.float64)).sum(axis=1)
    total = rows.sum()
    if total <= 0:
        return 0.0
    middle = int(np.argmax(np.cumsum(rows) > total / 2))
    return float(((np.arange(len(rows)) - middle) ** 2 * rows).sum())


def _turn(image, degrees, fill=255):
    """Turn a 2-D uint8 image counter-clockwise about its centre, keeping its size."""
    return np.asarray(Image.fromarray(image).rotate(degrees, Image.Resampling.BILINEAR,
                                                    fillcolor=fill))


def flatten_angle(image, low=0.0, high=180.0):
    """pydnn's search for the turn (degrees) that makes a grey image least tall:
    score the turns at one and two thirds of the range and keep the half nearer
    the better one, until the range is under a degree."""
    while high - low >= 1:
        step = (high - low) / 3.0
        scores = [stat_height(_turn(image, low + k * step)) for k in (1, 2)]
        if scores[0] < scores[1]:
            high = low + (high - low) / 2.0
        else:
            low = low + (high - low) / 2.0
    return low + (high - low) / 2


def canonicalize(image, fill=255):
    """pydnn's canonical form of a raw image: centred on a white square, turned to
    be least tall. Returns ``(image, angle, flip_ud, flip_lr)``; the flags say
    whether the top half is darker than the bottom and the left lighter than the
    right (pydnn recorded them without flipping)."""
    image = as_image(image)
    gray = image if image.ndim == 2 else image.mean(axis=0).astype(np.uint8)
    side = max(gray.shape)
    square = np.full(image.shape[:-2] + (side, side), fill, np.uint8)
    top, left = (side - gray.shape[0]) // 2, (side - gray.shape[1]) // 2
    square[..., top:top + gray.shape[0], left:left + gray.shape[1]] = image
    angle = flatten_angle(square if square.ndim == 2 else square.mean(axis=0).astype(np.uint8))
    planes = [square] if square.ndim == 2 else list(square)
    turned = np.stack([_turn(p, angle, fill) for p in planes]).reshape(square.shape)
    g = turned if turned.ndim == 2 else turned.mean(axis=0)
    half_h, half_w = g.shape[0] // 2, g.shape[1] // 2
    flip_ud = bool(g[:half_h].sum() < g[half_h:].sum())
    flip_lr = bool(g[:, :half_w].sum() > g[:, half_w:].sum())
    return turned, angle, flip_ud, flip_lr


def geometry_features(image, threshold=2, canonical=None):
    """pydnn's geometry of one raw image, in :data:`GEOMETRY_FEATURES` order.

    ``height`` and ``width`` of the raw image; ``box_height`` and
    ``box_width`` of the largest contiguous dark blob (pixels with
    ``255 - value > threshold``) of its canonical form; the ``angle`` it was
    turned by and the ``flip_ud`` and ``flip_lr`` flags of :func:`canonicalize`.
    ``canonical`` is :func:`canonicalize`'s result when already made.
    """
    image = as_image(image)
    turned, angle, flip_ud, flip_lr = canonical or canonicalize(image)
    box = largest_blob_box(pydnn_dark_mask(turned, threshold))
    box_hw = turned.shape[-2:] if box is None else (box[1] - box[0], box[3] - box[2])
    return np.array([*image.shape[-2:], *box_hw, angle, flip_ud, flip_lr], np.float64)
