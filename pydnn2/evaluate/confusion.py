"""Confusion matrices and the mistakes behind them, traced back to files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..preprocess import SET_NAMES
from .inference import class_indices, gathered, set_source, sharing, source_probabilities
from .predict import predict

if TYPE_CHECKING:                       # for the annotations only (the net imports this)
    from ..net import NN


def confusion_matrix(actual: Any, predicted: Any, num_classes: int) -> np.ndarray:
    """Counts ``m[a, p]`` of rows of class ``a`` predicted as ``p``."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(actual), np.asarray(predicted)), 1)
    return matrix


def checked_counts(matrix: Any, where: str) -> np.ndarray:
    """``matrix`` as a numpy array when it is a confusion matrix: square ``(K, K)``, of
    numbers, finite and not negative; else a :class:`DataError` naming the problem."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not len(matrix):
        raise DataError(f'{where}: expected a square confusion matrix (K, K), received shape '
                        f'{matrix.shape}')
    if matrix.dtype == bool or not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(
            matrix.dtype, np.complexfloating):
        raise DataError(f'{where}: expected a confusion matrix of counts (numbers), received '
                        f'an array of {matrix.dtype} ({matrix.ravel()[:1].tolist()[0]!r}, ...)')
    bad = np.argwhere(~np.isfinite(matrix) | (matrix < 0))
    if len(bad):
        a, p = bad[0]
        raise DataError(f'{where}: expected counts (finite, not negative) in the confusion '
                        f'matrix, received {matrix[a, p].item()!r} at actual class {a}, predicted '
                        f'{p} ({len(bad)} such cell{"s" * (len(bad) != 1)})')
    return matrix


def make_confusion_matrix(net: NN, data: Any, classes: Any, files: Any,
                          shard: bool = False) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Return ``(matrix, mistakes)`` for raw ``data`` with true ``classes``.

    ``mistakes`` lists ``(file_index, actual, predicted)`` for every wrongly
    classified row, in row order, so they can be traced back to files.
    ``classes`` must be class indices ``0 .. net.num_classes - 1``. ``data`` is
    anything :func:`~pydnn2.evaluate.predict` takes (raw input, a ``Dataset``, a
    ``DataLoader``); ``shard`` is as for ``predict``.
    """
    classes = class_indices(net, classes, 'make_confusion_matrix')
    files = np.asarray(files)
    if len(classes) != len(files):
        raise DataError(f'make_confusion_matrix: {len(classes)} classes but {len(files)} '
                        'file indices')
    if len(classes) == 0:
        return np.zeros((net.num_classes,) * 2, dtype=np.int64), []
    predicted, _ = predict(net, data, shard=shard)
    if len(predicted) != len(classes):
        raise DataError(f'make_confusion_matrix: data has {len(predicted)} rows but '
                        f'{len(classes)} classes')
    wrong = np.flatnonzero(predicted != classes)
    mistakes = [(files[i].item(), int(classes[i]), int(predicted[i])) for i in wrong]
    return confusion_matrix(classes, predicted, net.num_classes), mistakes


def get_confusion_matrices(net: NN,
                           shard: bool = False) -> list[tuple[np.ndarray, list[tuple]]]:
    """:func:`make_confusion_matrix` on the training (not augmented), validation and test
    sets, each read through the preprocessor's batch source; with ``shard=True`` under
    torchrun each process reads its block of each set and the blocks are gathered
    (every process must call; see :func:`~pydnn2.evaluate.predict`)."""
    part = sharing(net, shard)
    out = []
    for name, files in zip(SET_NAMES, net.preprocessor.get_files()):
        p, y = source_probabilities(net, set_source(net, name), part)
        p, y = gathered(p, part), gathered(y, part)
        classes, predicted = y.cpu().numpy(), p.argmax(1).cpu().numpy()
        files = np.asarray(files)
        wrong = np.flatnonzero(predicted != classes)
        mistakes = [(files[i].item(), int(classes[i]), int(predicted[i])) for i in wrong]
        out.append((confusion_matrix(classes, predicted, net.num_classes), mistakes))
    return out
