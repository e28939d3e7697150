"""Inference: predictions, set evaluation and confusion matrices.

Everything here runs the module in evaluation mode under
``torch.inference_mode()``: dropout passes its input through and batch norm
uses its running statistics, so a row's prediction never depends on which
other rows share its batch.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError
from .preprocess import num_rows

#: Rows per inference batch unless the caller asks otherwise.
EVAL_BATCH_SIZE = 4096


def eval_batch_size(net, batch_size=None):
    """The inference batch: ``batch_size`` if given, else the larger of the
    training batch and :data:`EVAL_BATCH_SIZE`."""
    return int(batch_size) if batch_size else max(net.batch_size, EVAL_BATCH_SIZE)


def iter_logits(net, x, batch_size=None):
    """Yield the logits ``(b, classes)`` of ``x`` (a dict of channel tensors), batch by batch."""
    module = net.module
    module.eval()
    n = num_rows(x)
    step = eval_batch_size(net, batch_size)
    with torch.inference_mode():
        for start in range(0, n, step):
            yield module({k: v[start:start + step] for k, v in x.items()})


def evaluate_set(net, x, y, batch_size=None):
    """Return ``(mean loss, error rate)`` of the net on a preprocessed set.

    Sums accumulate on the device and are read once; an empty set gives
    ``(None, None)``.
    """
    n = len(y)
    if n == 0:
        return None, None
    loss = torch.zeros((), device=net.device)
    errors = torch.zeros((), device=net.device, dtype=torch.long)
    start = 0
    for logits in iter_logits(net, x, batch_size):
        target = y[start:start + len(logits)]
        loss += F.cross_entropy(logits, target, reduction='sum')
        errors += (logits.argmax(1) != target).sum()
        start += len(logits)
    return loss.item() / n, errors.item() / n


def predict(net, data, batch_size=None, callback=None):
    """Predict classes and probabilities for raw ``data``.

    Parameters
    ----------
    net : NN
        A net ending in ``add_logistic``.
    data
        Raw input, as the net's preprocessor accepts it for ``preprocess``.
    batch_size : int, optional
        Rows per inference batch (default: see :func:`eval_batch_size`).
    callback : callable, optional
        Called with ``(classes, probabilities)`` of each batch as numpy
        arrays; the results are then not kept, and ``predict`` returns
        ``None``, so huge sets can stream to disk.

    Returns
    -------
    (classes, probabilities) : (ndarray (N,), ndarray (N, num_classes))
    """
    net.check_complete()
    x = net.preprocessor.preprocess(data)
    if num_rows(x) == 0:
        raise DataError('predict received no rows; pass at least one row')
    classes, probabilities = [], []
    for logits in iter_logits(net, x, batch_size):
        p = torch.softmax(logits.float(), 1)
        c, p = p.argmax(1).cpu().numpy(), p.cpu().numpy()
        if callback is not None:
            callback(c, p)
        else:
            classes.append(c)
            probabilities.append(p)
    if callback is not None:
        return None
    return np.concatenate(classes), np.concatenate(probabilities)


def confusion_matrix(actual, predicted, num_classes):
    """Counts ``m[a, p]`` of rows of class ``a`` predicted as ``p``."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(actual), np.asarray(predicted)), 1)
    return matrix


def make_confusion_matrix(net, data, classes, files):
    """Return ``(matrix, mistakes)`` for raw ``data`` with true ``classes``.

    ``mistakes`` lists ``(file_index, actual, predicted)`` for every wrongly
    classified row, in row order, so they can be traced back to files.
    """
    classes = np.asarray(classes)
    files = np.asarray(files)
    if len(classes) != len(files):
        raise DataError(f'make_confusion_matrix: {len(classes)} classes but {len(files)} '
                        'file indices')
    if len(classes) == 0:
        return np.zeros((net.num_classes,) * 2, dtype=np.int64), []
    predicted, _ = predict(net, data)
    if len(predicted) != len(classes):
        raise DataError(f'make_confusion_matrix: data has {len(predicted)} rows but '
                        f'{len(classes)} classes')
    wrong = np.flatnonzero(predicted != classes)
    mistakes = [(files[i].item(), int(classes[i]), int(predicted[i])) for i in wrong]
    return confusion_matrix(classes, predicted, net.num_classes), mistakes


def get_confusion_matrices(net):
    """:func:`make_confusion_matrix` on the training, validation and test sets."""
    pre = net.preprocessor
    return [make_confusion_matrix(net, x, y, f)
            for x, y, f in zip(pre.get_raw_x(), pre.get_raw_y(), pre.get_files())]
