"""Boxes around the object in an image: all its dark pixels, or its largest blob.

The *threshold box* is the bounding box of every dark pixel; the *contiguous
box* that of the largest connected blob of them (pydnn's rule: 4-connected,
and the largest is the blob with the largest bounding box), which leaves out
specks of dirt far from the object. Boxes are ``(top, bottom, left, right)``
with exclusive ends.
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


def label_components(mask, connectivity=4):
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


def blob_boxes(labels):
    """Bounding boxes ``(k, 4)`` of the regions ``1..k`` of a label image, as
    ``(top, bottom, left, right)`` rows with exclusive ends."""
    count = int(labels.max())
    rows, cols = np.nonzero(labels)
    which = labels[rows, cols] - 1
    boxes = np.empty((count, 4), np.int64)
    boxes[:, [0, 2]], boxes[:, [1, 3]] = np.iinfo(np.int64).max, -1
    np.minimum.at(boxes[:, 0], which, rows)
    np.maximum.at(boxes[:, 1], which, rows + 1)
    np.minimum.at(boxes[:, 2], which, cols)
    np.maximum.at(boxes[:, 3], which, cols + 1)
    return boxes


def largest_blob_box(mask, connectivity=4):
    """Bounding box ``(top, bottom, left, right)`` of the largest region of ``mask``.

    As in pydnn, regions are 4-connected by default and the largest is the
    one whose bounding box has the largest area (ties go to the first).
    Returns None when the mask is empty.
    """
    labels = label_components(mask, connectivity)
    if labels.max() == 0:
        return None
    boxes = blob_boxes(labels)
    areas = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    return tuple(int(v) for v in boxes[int(np.argmax(areas))])


def crop(image, box):
    """``image`` cut to ``box`` (all of it when ``box`` is None)."""
    if box is None:
        return image
    top, bottom, left, right = box
    return image[..., top:bottom, left:right]
