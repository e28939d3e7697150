"""Data sources: built-in small datasets and labelled image folders.

``load_digits`` returns scikit-learn's bundled 8x8 digits in pydnn2's
``(x, classes, file_indices)`` form, so examples and tests need no download.
"""

import numpy as np


def load_digits():
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
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None, :, :]  # (N, 8, 8) -> (N, 1, 8, 8)
    classes = bunch.target.astype(np.int64)
    return images, classes, np.arange(len(classes), dtype=np.int64)
