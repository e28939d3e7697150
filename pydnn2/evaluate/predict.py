"""Predictions, final-layer outputs and metrics of a trained net."""

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..files import nonfinite
from .inference import (gathered, input_source, iter_probabilities, iter_source,
                        labelled_source, set_source, sharing, source_probabilities)
from .metrics import as_metrics


def check_weights(net, where):
    """Raise :class:`DataError` naming the tensor when a weight or buffer of ``net`` holds
    NaN or infinity: every probability it gave would be NaN."""
    name = nonfinite(net.module.state_dict())
    if name is not None:
        raise DataError(f"{where}: the net's weights are not finite: {name!r} holds NaN or "
                        'infinity (training diverged, or set_params gave them), so every '
                        'probability would be NaN; train it again or load a saved net')


def predict(net, data, batch_size=None, callback=None, shard=False):
    """Predict classes and probabilities for raw ``data``.

    Parameters
    ----------
    net : NN
        A net ending in ``add_logistic``.
    data
        Raw input, as the net's preprocessor accepts it for ``preprocess``; or a
        torch ``Dataset`` or ``DataLoader`` whose items (batches) are ``x``,
        ``(x,)`` or ``(x, y)`` (``y`` is ignored), each batch of ``x`` made into
        channels by the preprocessor (see :mod:`pydnn2.evaluate.given`).
    batch_size : int, optional
        Rows per inference batch (default: :func:`inference_batch_size`,
        sized to the device; a ``DataLoader`` keeps its own batches).
    callback : callable, optional
        Called with ``(classes, probabilities)`` of each batch, in row order,
        as numpy arrays (``(b,)`` and ``(b, num_classes)``). Nothing is
        kept: ``predict`` returns ``None``, and the raw data is preprocessed
        one batch of rows at a time too (sliced, so a ``numpy.memmap`` is
        read piece by piece), so huge sets can stream from disk to disk.
        With ``shard=True`` each process's callback sees its own block.
    shard : bool
        Under torchrun, True shares the rows out: each process predicts its
        contiguous block and the blocks are gathered in row order, so every
        process returns what one process would. Every process must then call
        ``predict`` together. False (the default): each process predicts every
        row itself, so it may be called on one process alone.

    Returns
    -------
    (classes, probabilities) : (ndarray (N,), ndarray (N, num_classes))
        Or ``None`` with a ``callback``.
    """
    net.check_complete()
    check_weights(net, 'predict')
    if callback is not None and not callable(callback):
        raise ConfigError(f'predict: expected callback to be callable, received '
                          f'{type(callback).__name__}')
    part = sharing(net, shard)
    source = input_source(net, data, 'predict')
    if source.num_rows == 0:
        raise DataError('predict received no rows; pass at least one row')
    parts = []
    for logits, _ in iter_source(net, source, part, batch_size):
        p = torch.softmax(logits.float(), 1).cpu()
        if callback is not None:
            callback(p.argmax(1).numpy(), p.numpy())
        else:
            parts.append(p)
    if callback is not None:
        return None
    probabilities = gathered(torch.cat(parts) if parts else torch.zeros((0, net.num_classes)),
                             part).numpy()
    if not len(probabilities):
        raise DataError('predict received no rows; pass at least one row')
    return probabilities.argmax(1), probabilities


def metric_values(net, x, y, metrics, batch_size=None):
    """Evaluate ``metrics`` on a preprocessed set: ``{metric.name: value}``.

    ``x`` is a dict of channel tensors and ``y`` the classes, as
    :func:`evaluate_set` takes them (for instance the validation set during
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


def evaluate(net, data, metric, batch_size=None, shard=False):
    """Evaluate a metric (or a list of them) on a labelled set (neon's ``eval``).

    Parameters
    ----------
    net : NN
        A net ending in ``add_logistic``.
    data : str, (x, classes), Dataset or DataLoader
        'train', 'valid' or 'test' for the preprocessor's set (see
        :func:`named_set`), a pair of raw input (as for :func:`predict`)
        and its true classes, or a torch ``Dataset`` or ``DataLoader`` of
        ``(x, y)`` items.
    metric : metric or list of metrics
        E.g. ``Accuracy()`` or ``[LogLoss(), PrecisionRecall(10)]``, from
        :mod:`pydnn2.evaluate.metrics`. Each is reset before use.
    batch_size : int, optional
        Rows per inference batch (default: :func:`inference_batch_size`).
    shard : bool
        Under torchrun, share the rows out between the processes, which must all
        call (see :func:`predict`); the metrics see the gathered rows.

    Returns
    -------
    The metric's result (a float, or a dict for ``PrecisionRecall``), or the
    list of results for a list of metrics; ``None`` for an empty set.
    """
    net.check_complete()
    check_weights(net, 'evaluate')
    metrics = as_metrics(metric)
    part = sharing(net, shard)
    source = labelled_source(net, data, 'evaluate')
    p, y = source_probabilities(net, source, part, batch_size)
    p, y = gathered(p, part), gathered(y, part)
    values = _metric_results(metrics, p, y)
    results = [values[m.name] for m in metrics]
    return results if isinstance(metric, (list, tuple)) else results[0]


def get_outputs(net, data, batch_size=None, shard=False):
    """The final layer's output for every row, as a numpy array (neon's ``get_outputs``).

    The final layer of a pydnn2 net is ``add_logistic``'s softmax, so each
    row holds the class probabilities (float32, summing to 1): the same
    numbers ``predict`` returns second.

    Parameters
    ----------
    data : str, raw input, Dataset or DataLoader
        'train', 'valid' or 'test' for the preprocessor's set (see
        :func:`named_set`), or raw input, a ``Dataset`` or a ``DataLoader`` as
        for :func:`predict`.
    batch_size : int, optional
        Rows per inference batch (default: :func:`inference_batch_size`).
    shard : bool
        Under torchrun, share the rows out between the processes, which must all
        call (see :func:`predict`).

    Returns
    -------
    ndarray of float32, shape (N, num_classes)
    """
    net.check_complete()
    check_weights(net, 'get_outputs')
    part = sharing(net, shard)
    source = set_source(net, data) if isinstance(data, str) else input_source(net, data,
                                                                              'get_outputs')
    return gathered(source_probabilities(net, source, part, batch_size)[0], part).cpu().numpy()


def _metric_results(metrics, probabilities, y):
    """``{metric.name: value}`` of ``metrics`` (each reset) on probabilities and classes;
    every value None for an empty set."""
    for metric in metrics:
        metric.reset()
        if len(y):
            metric.update(probabilities, y.to(probabilities.device))
    return {metric.name: metric.result() for metric in metrics}
