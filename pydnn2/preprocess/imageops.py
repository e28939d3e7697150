"""Image operations for the preprocessors: batched affine transforms on the device,
and the orientation and shape statistics of raw images.

:func:`transform_images` turns, flips and stretches a whole batch of
equally sized images at once with ``grid_sample`` on the device the batch is
on; :func:`affine_matrices` builds its per-image matrices. The raw-image
helpers (:func:`geometry_features`, :func:`principal_angle`) work on one
numpy image of any size.

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

from .boxes import threshold_box
from .pixels import as_image, dark_mask

GEOMETRY_FEATURES = ('height', 'width', 'dark_area', 'ink', 'box_height', 'box_width',
                     'major_axis', 'minor_axis')


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


def geometry_features(image, threshold=128):
    """Simple shape statistics of one raw image, in :data:`GEOMETRY_FEATURES` order.

    ``height`` and ``width`` of the image; ``dark_area``, the number of
    pixels darker than ``threshold``; ``ink``, the summed darkness
    ``(255 - value) / 255``; ``box_height`` and ``box_width`` of the
    dark pixels; ``major_axis`` and ``minor_axis``, the standard deviations
    of the darkness along its principal axes. All but the first two are the
    same at any rotation of the object.
    """
    image = as_image(image)
    gray = image if image.ndim == 2 else image.mean(axis=0)  # (C, H, W) -> (H, W)
    mask = dark_mask(image, threshold)
    box = threshold_box(mask)
    box_hw = (0, 0) if box is None else (box[1] - box[0], box[3] - box[2])
    darkness = (255.0 - gray) / 255.0
    major, minor = _axes(darkness)
    return np.array([gray.shape[0], gray.shape[1], mask.sum(), darkness.sum(),
                     box_hw[0], box_hw[1], major, minor], np.float64)


def _covariance(weights):
    """Weighted 2x2 covariance of pixel positions, in (x, y) order."""
    total = weights.sum()
    if total <= 0:
        return np.zeros((2, 2))
    ys, xs = np.indices(weights.shape)
    points = np.stack([xs.ravel(), ys.ravel()])  # (2, H*W)
    return np.cov(points, aweights=weights.ravel(), bias=True)


def _axes(weights):
    eigen = np.clip(np.linalg.eigvalsh(_covariance(weights)), 0, None)
    return float(np.sqrt(eigen[1])), float(np.sqrt(eigen[0]))


def principal_angle(image):
    """Degrees to turn ``image`` counter-clockwise to lay its dark mass horizontal."""
    image = as_image(image)
    gray = image if image.ndim == 2 else image.mean(axis=0)  # (C, H, W) -> (H, W)
    cov = _covariance(255.0 - gray.astype(np.float64))
    # the major axis points at (cos a, sin a) with y down, i.e. a degrees clockwise
    return float(np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])))


def rotate_expand(image, degrees, fill):
    """Turn a raw image ``degrees`` counter-clockwise with Pillow, growing the
    canvas to fit and filling the new space with ``fill``."""
    if image.ndim == 3:
        return np.stack([rotate_expand(plane, degrees, fill) for plane in image])
    turned = Image.fromarray(image).rotate(degrees, Image.Resampling.BILINEAR, expand=True,
                                           fillcolor=fill)
    return np.asarray(turned)
