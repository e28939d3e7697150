"""Inference: predictions, final-layer outputs, metrics and confusion matrices.

Everything here runs the module in evaluation mode under
``torch.inference_mode()``: dropout passes its input through and batch norm
uses its running statistics, so a row's prediction never depends on which
other rows share its batch.

Inference batches are sized to the device, not to the training batch: see
:func:`inference_batch_size`.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, DataError
from .metrics import as_metrics
from .preprocess import SET_NAMES, as_labels, check_batch_size, num_rows

#: Rows per inference batch on the CPU (and the fallback elsewhere).
EVAL_BATCH_SIZE = 4096
#: The most rows per inference batch on any device: beyond this, larger
#: batches no longer run faster, they only hold more memory.
MAX_EVAL_BATCH_SIZE = 65536
#: The share of the free GPU memory an inference batch may fill.
GPU_MEMORY_FRACTION = 0.5
#: Bytes per activation value assumed by the estimate: float32 values times
#: 4, for what the node shapes do not show (a convolution's output before
#: its pooling, normalisation temporaries, convolution workspaces).
BYTES_PER_ACTIVATION = 4 * 4


def activation_bytes_per_row(net):
    """Estimated device memory one row needs during inference, in bytes.

    Sums the values of every node's output (inputs included) as if all were
    alive at once, times :data:`BYTES_PER_ACTIVATION`.
    """
    values = sum(math.prod(node.out_shape) for node in net.nodes)
    return max(1, values) * BYTES_PER_ACTIVATION


def rows_that_fit(free_bytes, row_bytes, fraction=GPU_MEMORY_FRACTION,
                  limit=MAX_EVAL_BATCH_SIZE):
    """The batch of rows of ``row_bytes`` each that fills ``fraction`` of
    ``free_bytes``: at least 1, at most ``limit``."""
    return int(max(1, min(limit, (free_bytes * fraction) // max(1, row_bytes))))


def inference_batch_size(net):
    """The default number of rows per inference batch for ``net``'s device.

    On CUDA: as many rows as fit in :data:`GPU_MEMORY_FRACTION` of the free
    memory (what the driver reports plus what PyTorch holds cached but
    unused), by :func:`activation_bytes_per_row`, at most
    :data:`MAX_EVAL_BATCH_SIZE`; should a batch still run out of memory,
    :func:`iter_logits` halves it and retries. Elsewhere:
    :data:`EVAL_BATCH_SIZE`. The training batch size plays no part.
    """
    device = torch.device(net.device)
    if device.type != 'cuda':
        return EVAL_BATCH_SIZE
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return rows_that_fit(free, activation_bytes_per_row(net))


def eval_batch_size(net, batch_size=None):
    """The inference batch: ``batch_size`` if given, else
    :func:`inference_batch_size` of the net."""
    if batch_size is None:
        return inference_batch_size(net)
    check_batch_size(batch_size)
    return int(batch_size)


def iter_logits(net, x, batch_size=None):
    """Yield the logits ``(b, classes)`` of ``x`` (a dict of channel tensors), batch by batch.

    Batches hold ``batch_size`` rows (default: :func:`inference_batch_size`).
    With the default on CUDA, a batch that runs out of memory is halved and
    run again, so the largest batch that fits is found.
    """
    module = net.module
    module.eval()
    n = num_rows(x)
    step = eval_batch_size(net, batch_size)
    adaptive = batch_size is None and torch.device(net.device).type == 'cuda'
    start = 0
    with torch.inference_mode():
        while start < n:
            try:
                logits = module({k: v[start:start + step].to(net.device, non_blocking=True)
                                 for k, v in x.items()})
            except torch.cuda.OutOfMemoryError:
                if not adaptive or step == 1:
                    raise
                step //= 2
                torch.cuda.empty_cache()
                continue
            start += len(logits)
            yield logits


def iter_probabilities(net, x, batch_size=None):
    """Yield the softmax probabilities ``(b, classes)`` (float32) of ``x``, batch by batch."""
    for logits in iter_logits(net, x, batch_size):
        yield torch.softmax(logits.float(), 1)


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
        target = y[start:start + len(logits)].to(net.device, non_blocking=True)
        loss += F.cross_entropy(logits, target, reduction='sum')
        errors += (logits.argmax(1) != target).sum()
        start += len(logits)
    return loss.item() / n, errors.item() / n


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
        Rows per inference batch (default: :func:`inference_batch_size`,
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


def device_set(net, pair, resident=True):
    """The set's tensors on the net's device, or pinned in host memory if not ``resident``."""
    x, y = pair
    x = {k: torch.as_tensor(v) for k, v in x.items()}
    y = torch.as_tensor(y)
    if resident:
        return {k: v.to(net.device, non_blocking=True) for k, v in x.items()}, y.to(net.device)
    pin = torch.device(net.device).type == 'cuda'
    return ({k: v.cpu().pin_memory() if pin else v.cpu() for k, v in x.items()},
            y.cpu().pin_memory() if pin else y.cpu())


def named_set(net, name):
    """The preprocessed set ``name`` ('train', 'valid' or 'test') as ``(x, y)`` on the device.

    'valid' and 'test' are the sets training evaluates; 'train' is the raw
    training set preprocessed as for prediction, never augmented (asking
    for it does not advance an augmentation schedule).
    """
    pre = net.preprocessor
    if name == 'train':
        return device_set(net, (pre.preprocess(pre.get_raw_x()[0]), pre.get_raw_y()[0]))
    if name == 'valid':
        return device_set(net, pre.get_valid())
    if name == 'test':
        return device_set(net, pre.get_test())
    raise ConfigError(f'expected a set name among {list(SET_NAMES)}, received {name!r}')


def _labelled_set(net, data, what):
    if isinstance(data, str):
        return named_set(net, data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        raw, classes = data
        y = as_labels(classes, f'{what}: classes')
        x = net.preprocessor.preprocess(raw)
        if num_rows(x) != len(y):
            raise DataError(f'{what}: expected one class per row of data ({num_rows(x)} '
                            f'rows), received {len(y)} classes')
        return device_set(net, (x, y))
    raise ConfigError(f'{what}: expected data as {" / ".join(map(repr, SET_NAMES))} or an '
                      f'(x, classes) pair, received {type(data).__name__}')


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


def eval_metric(net, data, metric, batch_size=None):
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
        :mod:`pydnn2.metrics`. Each is reset before use.
    batch_size : int, optional
        Rows per inference batch (default: :func:`inference_batch_size`).

    Returns
    -------
    The metric's result (a float, or a dict for ``PrecisionRecall``), or the
    list of results for a list of metrics; ``None`` for an empty set.
    """
    net.check_complete()
    metrics = as_metrics(metric)
    x, y = _labelled_set(net, data, 'eval')
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
        Rows per inference batch (default: :func:`inference_batch_size`).

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
