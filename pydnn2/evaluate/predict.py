"""Predictions, final-layer outputs and metrics of a trained net."""

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..preprocess import num_rows
from .inference import eval_batch_size, iter_probabilities, labelled_set, named_set
from .metrics import as_metrics


def _raw_rows(data, start, stop):
    """Rows ``start:stop`` of raw data (array, list, or dict of either), as slices,
    so a memory-mapped array is read only there."""
    if isinstance(data, dict):
        return {name: _raw_rows(v, start, stop) for name, v in data.items()}
    return data[start:stop]


def predict(net, data, batch_size=None, callback=None):
    """Predict classes and probabilities for raw ``data``.

    Parameters
    ----------
    net : NN
        A net ending in ``add_logistic``.
    data
        Raw input, as the net's preprocessor accepts it for ``preprocess``.
    batch_size : int, optional
        Rows per inference batch (default: :func:`~pydnn2.evaluate.inference_batch_size`,
        sized to the device).
    callback : callable, optional
        Called with ``(classes, probabilities)`` of each batch, in row order,
        as numpy arrays (``(b,)`` and ``(b, num_classes)``). Nothing is
        kept: ``predict`` returns ``None``, and the raw data is preprocessed
        one batch of rows at a time too (sliced, so a ``numpy.memmap`` is
        read piece by piece), so huge sets can stream from disk to disk.

    Returns
    -------
    (classes, probabilities) : (ndarray (N,), ndarray (N, num_classes))
        Or ``None`` with a ``callback``.
    """
    net.check_complete()
    if callback is not None:
        if not callable(callback):
            raise ConfigError(f'predict: expected callback to be callable, received '
                              f'{type(callback).__name__}')
        n = num_rows(data)
        if n == 0:
            raise DataError('predict received no rows; pass at least one row')
        step = eval_batch_size(net, batch_size)
        for start in range(0, n, step):
            x = net.preprocessor.preprocess(_raw_rows(data, start, start + step))
            for p in iter_probabilities(net, x, batch_size):
                p = p.cpu().numpy()
                callback(p.argmax(1), p)
        return None
    x = net.preprocessor.preprocess(data)
    if num_rows(x) == 0:
        raise DataError('predict received no rows; pass at least one row')
    probabilities = np.concatenate([p.cpu().numpy()
                                    for p in iter_probabilities(net, x, batch_size)])
    return probabilities.argmax(1), probabilities


def metric_values(net, x, y, metrics, batch_size=None):
    """Evaluate ``metrics`` on a preprocessed set: ``{metric.name: value}``.

    ``x`` is a dict of channel tensors and ``y`` the classes, as
    :func:`~pydnn2.evaluate.evaluate_set` takes them (for instance the validation set during
    training, MXNet.jl's ``eval_metric``). Each metric is reset, fed the
    softmax probabilities batch by batch, and read once; on an empty set
    every value is ``None``.
    """
    metrics = as_metrics(metrics)
    for metric in metrics:
        metric.reset()
    y = torch.as_tensor(y)
    start = 0
    if len(y):
        for p in iter_probabilities(net, x, batch_size):
            target = y[start:start + len(p)].to(p.device)
            for metric in metrics:
                metric.update(p, target)
            start += len(p)
    return {metric.name: metric.result() for metric in metrics}


def evaluate(net, data, metric, batch_size=None):
    """Evaluate a metric (or a list of them) on a labelled set (neon's ``eval``).

    Parameters
    ----------
    net : NN
        A net ending in ``add_logistic``.
    data : str or (x, classes)
        'train', 'valid' or 'test' for the preprocessor's set (see
        :func:`named_set`), or a pair of raw input (as for :func:`predict`)
        and its true classes.
    metric : metric or list of metrics
        E.g. ``Accuracy()`` or ``[LogLoss(), PrecisionRecall(10)]``, from
        :mod:`pydnn2.evaluate.metrics`. Each is reset before use.
    batch_size : int, optional
        Rows per inference batch (default: :func:`~pydnn2.evaluate.inference_batch_size`).

    Returns
    -------
    The metric's result (a float, or a dict for ``PrecisionRecall``), or the
    list of results for a list of metrics; ``None`` for an empty set.
    """
    net.check_complete()
    metrics = as_metrics(metric)
    x, y = labelled_set(net, data, 'evaluate')
    values = metric_values(net, x, y, metrics, batch_size)
    results = [values[m.name] for m in metrics]
    return results if isinstance(metric, (list, tuple)) else results[0]


def get_outputs(net, data, batch_size=None):
    """The final layer's output for every row, as a numpy array (neon's ``get_outputs``).

    The final layer of a pydnn2 net is ``add_logistic``'s softmax, so each
    row holds the class probabilities (float32, summing to 1): the same
    numbers ``predict`` returns second.

    Parameters
    ----------
    data : str or raw input
        'train', 'valid' or 'test' for the preprocessor's set (see
        :func:`named_set`), or raw input as for :func:`predict`.
    batch_size : int, optional
        Rows per inference batch (default: :func:`~pydnn2.evaluate.inference_batch_size`).

    Returns
    -------
    ndarray of float32, shape (N, num_classes)
    """
    net.check_complete()
    if isinstance(data, str):
        x, _ = named_set(net, data)
    else:
        x = net.preprocessor.preprocess(data)
    outputs = [p.cpu().numpy() for p in iter_probabilities(net, x, batch_size)]
    if not outputs:
        return np.zeros((0, net.num_classes), dtype=np.float32)
    return np.concatenate(outputs)
