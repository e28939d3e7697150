"""Running a net without training it: batches sized to the device, logits, losses.

Everything here runs the module in evaluation mode under
``torch.inference_mode()``: dropout passes its input through and batch norm
uses its running statistics, so a row's prediction never depends on which
other rows share its batch, and nothing is drawn from a random generator.
Each batch runs inside :func:`inference_mode_of`, which gives every
submodule its train/eval mode back afterwards and holds the module's
:func:`~pydnn2.model.modules.module_lock` (which training steps hold too):
so ``predict`` and the rest may be called from a callback or another thread
while the net trains, and every training batch still trains in training
mode, drawing the random numbers it would have drawn.

Inference batches are sized to the device, not to the training batch: see
:func:`inference_batch_size`.
"""

import contextlib

import torch
import torch.nn.functional as F

from .. import checks
from ..errors import ConfigError, DataError
from ..model.memory import inference_bytes_per_row
from ..model.modules import module_lock
from ..preprocess import SET_NAMES, as_labels, num_rows

#: Rows per inference batch on the CPU (and the fallback elsewhere).
EVAL_BATCH_SIZE = 4096
#: The most rows per inference batch on any device (beyond this, larger
#: batches no longer run faster, they only hold more memory).
MAX_EVAL_BATCH_SIZE = 65536
#: The share of the free GPU memory an inference batch may fill.
GPU_MEMORY_FRACTION = 0.5

@contextlib.contextmanager
def inference_mode_of(module):
    """Run ``module`` in evaluation mode, under ``torch.inference_mode()``, for the
    ``with`` block, holding its :func:`~pydnn2.model.modules.module_lock`;
    afterwards each submodule has its own train/eval mode back.

    >>> net = torch.nn.Sequential(torch.nn.Dropout(0.5))
    >>> with inference_mode_of(net):
    ...     net.training
    False
    >>> net.training
    True
    """
    with module_lock(module), torch.inference_mode():
        modules = list(module.modules())
        modes = [m.training for m in modules]
        module.eval()
        try:
            yield module
        finally:
            for m, mode in zip(modules, modes):
                m.training = mode


def rows_that_fit(free_bytes, row_bytes, fraction=GPU_MEMORY_FRACTION,
                  limit=MAX_EVAL_BATCH_SIZE):
    """The batch of rows of ``row_bytes`` each that fills ``fraction`` of
    ``free_bytes``: at least 1, at most ``limit``."""
    return int(max(1, min(limit, (free_bytes * fraction) // max(1, row_bytes))))


def inference_batch_size(net):
    """The default number of rows per inference batch for ``net``'s device.

    On CUDA: as many rows as fit in :data:`GPU_MEMORY_FRACTION` of the free
    memory (what the driver reports plus what PyTorch holds cached but
    unused), by the memory model's
    :func:`~pydnn2.model.memory.inference_bytes_per_row`, at most
    :data:`MAX_EVAL_BATCH_SIZE`; should a batch still run out of memory,
    :func:`iter_logits` halves it and retries. Elsewhere:
    :data:`EVAL_BATCH_SIZE`. The training batch size plays no part.
    """
    device = torch.device(net.device)
    if device.type != 'cuda':
        return EVAL_BATCH_SIZE
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return rows_that_fit(free, inference_bytes_per_row(net.graph))


def eval_batch_size(net, batch_size=None):
    """The inference batch: ``batch_size`` if given, else
    :func:`inference_batch_size` of the net."""
    if batch_size is None:
        return inference_batch_size(net)
    return checks.batch_size(batch_size)


def iter_logits(net, x, batch_size=None):
    """Yield the logits ``(b, classes)`` of ``x`` (a dict of channel tensors), batch by batch.

    Batches hold ``batch_size`` rows (default: :func:`inference_batch_size`).
    With the default on CUDA, a batch that runs out of memory is halved and
    run again, so the largest batch that fits is found. Each batch runs in
    :func:`inference_mode_of`: between batches the module is in the mode
    its caller left it in.
    """
    module = net.module
    n = num_rows(x)
    step = eval_batch_size(net, batch_size)
    adaptive = batch_size is None and torch.device(net.device).type == 'cuda'
    start = 0
    while start < n:
        try:
            with inference_mode_of(module):
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


def set_sums(net, x, y, batch_size=None):
    """``(summed loss, error count)`` of the net on a preprocessed set, as two
    tensors on the device (what :func:`evaluate_set` divides by the rows; data-parallel
    training adds them over the ranks' blocks first)."""
    loss = torch.zeros((), device=net.device)
    errors = torch.zeros((), device=net.device, dtype=torch.long)
    start = 0
    for logits in iter_logits(net, x, batch_size):
        target = y[start:start + len(logits)].to(net.device, non_blocking=True)
        loss += F.cross_entropy(logits, target, reduction='sum')
        errors += (logits.argmax(1) != target).sum()
        start += len(logits)
    return loss, errors


def evaluate_set(net, x, y, batch_size=None):
    """Return ``(mean loss, error rate)`` of the net on a preprocessed set.

    Sums accumulate on the device and are read once; an empty set gives
    ``(None, None)``.
    """
    n = len(y)
    if n == 0:
        return None, None
    loss, errors = set_sums(net, x, y, batch_size)
    return loss.item() / n, errors.item() / n


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


def class_indices(net, classes, what):
    """``classes`` as int64 class indices of ``net`` (``0 .. num_classes - 1``); a
    :class:`DataError` naming ``what`` and the bad class otherwise."""
    y = as_labels(classes, f'{what}: classes')
    if len(y) and y.max() >= net.num_classes:
        raise DataError(f'{what}: classes must lie in 0 .. {net.num_classes - 1} (the net has '
                        f'num_classes {net.num_classes}); received class {int(y.max())}')
    return y


def labelled_set(net, data, what):
    """A set name or an ``(x, classes)`` pair as ``(x, y)`` on the net's device."""
    if isinstance(data, str):
        return named_set(net, data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        raw, classes = data
        y = class_indices(net, classes, what)
        x = net.preprocessor.preprocess(raw)
        if num_rows(x) != len(y):
            raise DataError(f'{what}: expected one class per row of data ({num_rows(x)} '
                            f'rows), received {len(y)} classes')
        return device_set(net, (x, y))
    raise ConfigError(f'{what}: expected data as {" / ".join(map(repr, SET_NAMES))} or an '
                      f'(x, classes) pair, received {type(data).__name__}')
