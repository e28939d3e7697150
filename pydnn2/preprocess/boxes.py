"""Boxes around the object in an image: all its dark pixels, or its largest blob.

The *threshold box* is the bounding box of every dark pixel; the *contiguous
box* that of the largest connected blob of them, which leaves out specks of
dirt far from the object. Boxes are ``(top, bottom, left, right)`` with
exclusive ends.
"""

import numpy as np

from .. import checks


def threshold_box(mask):
    """Bounding box ``(top, bottom, left, right)`` (ends exclusive) of ``mask``.

    Returns None when the mask is empty.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _neighbour_pairs(index, mask, connectivity):
    """Flat indices ``(a, b)`` of every pair of neighbouring pixels inside ``mask``."""
    shifts = [(slice(None), slice(None, -1), slice(None), slice(1, None)),   # right
              (slice(None, -1), slice(None), slice(1, None), slice(None))]   # down
    if connectivity == 8:
        shifts += [(slice(None, -1), slice(None, -1), slice(1, None), slice(1, None)),
                   (slice(None, -1), slice(1, None), slice(1, None), slice(None, -1))]
    pairs_a, pairs_b = [], []
    for r0, c0, r1, c1 in shifts:
        both = mask[r0, c0] & mask[r1, c1]
        pairs_a.append(index[r0, c0][both])
        pairs_b.append(index[r1, c1][both])
    return np.concatenate(pairs_a), np.concatenate(pairs_b)


def _roots(parent):
    """Follow parent pointers until every entry names its root."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def label_components(mask, connectivity=8):
    """Label the connected regions of a boolean mask (numpy union-find).

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    connectivity : {4, 8}
        Whether diagonal neighbours are connected.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        0 outside the mask, 1..k for the k regions, numbered in the order
        of their first pixel (row by row).
    """
    checks.one_of(connectivity, 'connectivity', (4, 8))
    mask = np.asarray(mask, bool)
    index = np.full(mask.shape, -1, np.int64)
    index[mask] = np.arange(int(mask.sum()))
    a, b = _neighbour_pairs(index, mask, connectivity)
    parent = np.arange(int(mask.sum()))
    while True:
        root_a, root_b = parent[a], parent[b]
        differ = root_a != root_b
        if not differ.any():
            break
        # hook the larger root under the smaller: pointers only ever decrease
        np.minimum.at(parent, np.maximum(root_a[differ], root_b[differ]),
                      np.minimum(root_a[differ], root_b[differ]))
        parent = _roots(parent)
    labels = np.zeros(mask.shape, np.int64)
    labels[mask] = np.unique(parent, return_inverse=True)[1].ravel() + 1
    return labels


def largest_blob_box(mask, connectivity=8):
    """Bounding box ``(top, bottom, left, right)`` of the largest region of ``mask``.

    The largest region is the one with the most pixels (ties go to the
    first). Returns None when the mask is empty.
    """
    labels = label_components(mask, connectivity)
    if labels.max() == 0:
        return None
    biggest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return threshold_box(labels == biggest)


def crop(image, box):
    """``image`` cut to ``box`` (all of it when ``box`` is None)."""
    if box is None:
        return image
    top, bottom, left, right = box
    return image[..., top:bottom, left:right]
