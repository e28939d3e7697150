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

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .. import checks, distributed
from ..errors import ConfigError, DataError
from ..model.memory import inference_bytes_per_row
from ..model.modules import module_lock
from ..preprocess import SET_NAMES, as_labels, num_rows, rows
from ..preprocess.sources import Batches, BatchSource, EpochPlan, Shard
from .given import DatasetInputs, DatasetSource, is_torch_data

if TYPE_CHECKING:                       # for the annotations only (the net imports this)
    from ..net import NN

#: Rows per inference batch on the CPU (and the fallback elsewhere).
EVAL_BATCH_SIZE = 4096
#: The most rows per inference batch on any device (beyond this, larger
#: batches no longer run faster, they only hold more memory).
MAX_EVAL_BATCH_SIZE = 65536
#: The most bytes an inference batch may take on the CPU (its rows, read from disk, and
#: their activations): wide rows make smaller batches.
CPU_BATCH_BYTES = 64 * 2 ** 20
#: The share of the free GPU memory an inference batch may fill.
GPU_MEMORY_FRACTION = 0.5
# The default share: all the rows, one process (a Shard is frozen, so one serves every call).
_ONE_PROCESS = Shard()

@contextlib.contextmanager
def inference_mode_of(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
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


def rows_that_fit(free_bytes: float, row_bytes: float, fraction: float = GPU_MEMORY_FRACTION,
                  limit: int = MAX_EVAL_BATCH_SIZE) -> int:
    """The batch of rows of ``row_bytes`` each that fills ``fraction`` of
    ``free_bytes``: at least 1, at most ``limit``."""
    return int(max(1, min(limit, (free_bytes * fraction) // max(1, row_bytes))))


def inference_batch_size(net: NN) -> int:
    """The default number of rows per inference batch for ``net``'s device.

    On CUDA: as many rows as fit in :data:`GPU_MEMORY_FRACTION` of the free
    memory (what the driver reports plus what PyTorch holds cached but
    unused), by the memory model's
    :func:`~pydnn2.model.memory.inference_bytes_per_row`, at most
    :data:`MAX_EVAL_BATCH_SIZE`; should a batch still run out of memory,
    :func:`iter_logits` halves it and retries. Elsewhere:
    :data:`EVAL_BATCH_SIZE` rows, or fewer where they would take more than
    :data:`CPU_BATCH_BYTES`. The training batch size plays no part.
    """
    device = torch.device(net.device)
    if device.type != 'cuda':        # rows of a few bytes: 4096; wide rows: what fits
        return rows_that_fit(CPU_BATCH_BYTES, inference_bytes_per_row(net.graph), 1.0,
                             EVAL_BATCH_SIZE)
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return rows_that_fit(free, inference_bytes_per_row(net.graph))


def eval_batch_size(net: NN, batch_size: int | None = None) -> int:
    """The inference batch: ``batch_size`` if given, else
    :func:`inference_batch_size` of the net."""
    if batch_size is None:
        return inference_batch_size(net)
    return checks.batch_size(batch_size)


def iter_logits(net: NN, x: dict[str, torch.Tensor],
                batch_size: int | None = None) -> Iterator[torch.Tensor]:
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


def iter_probabilities(net: NN, x: dict[str, torch.Tensor],
                       batch_size: int | None = None) -> Iterator[torch.Tensor]:
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


def evaluate_set(net: NN, x: dict[str, torch.Tensor], y: torch.Tensor,
                 batch_size: int | None = None) -> tuple[float | None, float | None]:
    """Return ``(mean loss, error rate)`` of the net on a preprocessed set.

    Sums accumulate on the device and are read once; an empty set gives
    ``(None, None)``.
    """
    n = len(y)
    if n == 0:
        return None, None
    loss, errors = set_sums(net, x, y, batch_size)
    return loss.item() / n, errors.item() / n


def device_set(net: NN, pair: tuple[dict[str, torch.Tensor], torch.Tensor],
               resident: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The set's tensors on the net's device, or pinned in host memory if not ``resident``."""
    x, y = pair
    x = {k: torch.as_tensor(v) for k, v in x.items()}
    y = torch.as_tensor(y)
    if resident:
        return {k: v.to(net.device, non_blocking=True) for k, v in x.items()}, y.to(net.device)
    pin = torch.device(net.device).type == 'cuda'
    return ({k: v.cpu().pin_memory() if pin else v.cpu() for k, v in x.items()},
            y.cpu().pin_memory() if pin else y.cpu())


def _raw_rows(data, start, stop):
    """Rows ``start:stop`` of raw data (array, list, or dict of either), as slices; a
    memory-mapped array (held as its reader: :func:`_readers`) read from its file."""
    if isinstance(data, dict):
        return {name: _raw_rows(v, start, stop) for name, v in data.items()}
    if isinstance(data, (rows.ArrayRows, rows.RowView)):
        return data.take(np.arange(start, stop)).numpy()
    return data[start:stop]


def _readers(data):
    """Raw data with each memory-mapped array replaced by its reader (which reads rows
    with ``pread``, so predicting over a huge file keeps memory bounded)."""
    if isinstance(data, dict):
        return {name: _readers(v) for name, v in data.items()}
    return rows.reader(data) if rows.is_rows(data) else data


class RawSource(BatchSource):
    """Raw rows, as ``predict`` takes them, and optionally their classes, made into
    channels by the net's preprocessor one batch at a time (so a large or
    memory-mapped input is never preprocessed whole).

    Parameters
    ----------
    preprocessor : pydnn2.preprocess.Preprocessor
    raw
        Raw input as ``preprocessor.preprocess`` accepts it.
    classes : array, optional
        One class per row (checked by the caller); -1 for every row when absent.
    """

    def __init__(self, preprocessor, raw, classes=None):
        self.preprocessor, self.raw = preprocessor, _readers(raw)
        self._rows = num_rows(raw)
        self._y = (np.full(self._rows, -1, np.int64) if classes is None
                   else np.asarray(classes, np.int64))

    @property
    def num_rows(self):
        """Rows of the raw input."""
        return self._rows

    def labels(self):
        """The classes given (-1 where none were)."""
        return self._y

    def batches(self, plan):
        """The rows in order (this rank's block of them), preprocessed batch by batch."""
        start, stop = plan.shard.block(self._rows)
        bounds = [(a, min(stop, a + plan.batch_size))
                  for a in range(start, stop, plan.batch_size)][plan.start:]
        return Batches((self._batch(a, b, plan.device) for a, b in bounds), len(bounds),
                       plan.start)

    def _batch(self, start, stop, device):
        x = self.preprocessor.preprocess(_raw_rows(self.raw, start, stop))
        return ({k: v.to(device, non_blocking=True) for k, v in x.items()},
                torch.from_numpy(self._y[start:stop]).to(device))


def set_source(net: NN, name: str) -> BatchSource:
    """The batch source of the preprocessor's set ``name`` ('train', 'valid' or 'test'):
    'valid' and 'test' are the sets training evaluates; 'train' is the training set
    as for prediction, never augmented (reading it does not move an augmentation
    schedule on)."""
    if name not in SET_NAMES:
        raise ConfigError(f'expected a set name among {list(SET_NAMES)}, received {name!r}')
    return net.preprocessor.source(name, augment=False)


def named_set(net: NN, name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The preprocessed set ``name`` ('train', 'valid' or 'test') whole, as ``(x, y)`` on
    the device (see :func:`set_source`)."""
    return set_source(net, name).whole(net.device)


def class_indices(net, classes, what):
    """``classes`` as int64 class indices of ``net`` (``0 .. num_classes - 1``); a
    :class:`DataError` naming ``what`` and the bad class otherwise."""
    y = as_labels(classes, f'{what}: classes')
    if len(y) and y.max() >= net.num_classes:
        raise DataError(f'{what}: classes must lie in 0 .. {net.num_classes - 1} (the net has '
                        f'num_classes {net.num_classes}); received class {int(y.max())}')
    return y


def input_source(net, data, what):
    """Raw input (as ``preprocess`` takes it) or a torch ``Dataset`` or ``DataLoader``
    (:mod:`.given`; classes optional) as a batch source."""
    if is_torch_data(data):
        return DatasetSource(net.preprocessor, data, what)
    return RawSource(net.preprocessor, data)


def labelled_source(net, data, what):
    """A set name, an ``(x, classes)`` pair of raw input, or a torch ``Dataset`` or
    ``DataLoader`` of ``(x, y)`` items (:mod:`.given`) as a batch source."""
    if isinstance(data, str):
        return set_source(net, data)
    if is_torch_data(data):
        return DatasetSource(net.preprocessor, data, what, labelled=True)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        raw, classes = data
        y = class_indices(net, classes, what)
        rows = num_rows(raw)
        if rows != len(y):
            raise DataError(f'{what}: expected one class per row of data ({rows} '
                            f'rows), received {len(y)} classes')
        return RawSource(net.preprocessor, raw, y)
    raise ConfigError(f'{what}: expected data as {" / ".join(map(repr, SET_NAMES))}, an '
                      '(x, classes) pair, or a torch Dataset or DataLoader of (x, y) items; '
                      f'received {type(data).__name__}')


def labelled_set(net, data, what):
    """A set name or an ``(x, classes)`` pair as ``(x, y)`` on the net's device, whole."""
    return labelled_source(net, data, what).whole(net.device)


def sharing(net, shard):
    """The :class:`~pydnn2.preprocess.sources.Shard` of the rows this process evaluates.

    With ``shard=True`` under torchrun, this rank's block (the process group is
    initialised first if training has not done it): every rank must then make the
    same call, and :func:`gathered` puts the blocks together. Otherwise (the
    default, and outside torchrun) every row, with no collective: safe to call on
    one rank alone."""
    if not isinstance(shard, bool):
        raise ConfigError(f'shard: expected True (each process evaluates its block of the '
                          f'rows, gathered) or False (each evaluates every row); received '
                          f'{shard!r}')
    if shard and distributed.init(net.device):
        return Shard(distributed.rank(), distributed.world_size())
    return Shard()


def gathered(tensor, shard):
    """Every rank's rows of ``tensor`` in rank order (the rows in order) when ``shard``
    splits them between ranks; ``tensor`` itself otherwise."""
    return distributed.all_gather_rows(tensor) if shard.world > 1 else tensor


def gathered_arrays(shard, *arrays):
    """:func:`gathered` for numpy arrays: each gathered, as numpy arrays."""
    if shard.world == 1:
        return arrays
    return tuple(gathered(torch.from_numpy(np.ascontiguousarray(a)), shard).numpy()
                 for a in arrays)


def _logits(net, x, adaptive):
    """The logits of one batch; on CUDA with ``adaptive``, a batch that runs out of
    memory is run again in halves."""
    try:
        with inference_mode_of(net.module):
            return net.module(x)
    except torch.cuda.OutOfMemoryError:
        rows = num_rows(x)
        if not adaptive or rows == 1:
            raise
        torch.cuda.empty_cache()
        half = rows // 2
        return torch.cat([_logits(net, {k: v[:half] for k, v in x.items()}, adaptive),
                          _logits(net, {k: v[half:] for k, v in x.items()}, adaptive)])


def iter_source(net, source, shard=_ONE_PROCESS, batch_size=None):
    """Yield ``(logits, y)`` of a batch source's rows in order (this rank's block of
    them with ``shard``), one inference batch at a time (see :func:`iter_logits`)."""
    plan = EpochPlan(batch_size=eval_batch_size(net, batch_size),
                     device=torch.device(net.device), shard=shard, whole_batches=False,
                     num_classes=net.num_classes)
    adaptive = batch_size is None and torch.device(net.device).type == 'cuda'
    with source.batches(plan) as batches:
        for x, y in batches:
            yield _logits(net, x, adaptive), y


def source_sums(net, source, shard=_ONE_PROCESS, batch_size=None):
    """``(summed loss, error count, rows)`` of the net on a batch source (this rank's
    block with ``shard``), as device tensors and an int."""
    loss = torch.zeros((), device=net.device)
    errors = torch.zeros((), device=net.device, dtype=torch.long)
    rows = 0
    for logits, y in iter_source(net, source, shard, batch_size):
        loss += F.cross_entropy(logits, y, reduction='sum')
        errors += (logits.argmax(1) != y).sum()
        rows += len(y)
    return loss, errors, rows


def evaluate_source(net, source, batch_size=None):
    """``(mean loss, error rate)`` of the net on a batch source; ``(None, None)`` for an
    empty one."""
    loss, errors, rows = source_sums(net, source, batch_size=batch_size)
    if rows == 0:
        return None, None
    return loss.item() / rows, errors.item() / rows


def source_probabilities(net, source, shard=_ONE_PROCESS, batch_size=None):
    """The softmax probabilities ``(n, classes)`` (float32) and classes ``(n,)`` of a
    batch source's rows (this rank's block with ``shard``), on the device."""
    probabilities, classes = [], []
    for logits, y in iter_source(net, source, shard, batch_size):
        probabilities.append(torch.softmax(logits.float(), 1))
        classes.append(y)
    if not probabilities:
        return (torch.zeros((0, net.num_classes), device=net.device),
                torch.zeros(0, dtype=torch.long, device=net.device))
    return torch.cat(probabilities), torch.cat(classes)


def source_losses(net: NN, source: BatchSource, shard: Shard = _ONE_PROCESS,
                  batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The classes, probabilities (as ``predict`` gives them) and each row's
    cross-entropy of a batch source's rows (of this rank's block): what
    :func:`~pydnn2.evaluate.interpret.interpret` reads."""
    probabilities, losses, classes = [], [], []
    for logits, target in iter_source(net, source, shard, batch_size):
        logits = logits.float()
        probabilities.append(torch.softmax(logits, 1).cpu().numpy())
        picked = torch.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
        losses.append(-picked.double().cpu().numpy())
        classes.append(target.cpu().numpy())
    if not classes:
        return np.zeros(0, np.int64), np.zeros((0, net.num_classes), np.float32), np.zeros(0)
    return np.concatenate(classes), np.concatenate(probabilities), np.concatenate(losses)


def raw_and_files(net: NN, data: Any) -> tuple[Any, np.ndarray | None]:
    """The raw input and file indices of a set name, an ``(x, classes)`` pair or a torch
    ``Dataset`` or ``DataLoader`` (whose file indices are unknown: None)."""
    if isinstance(data, str):
        index = SET_NAMES.index(data)
        pre = net.preprocessor
        return pre.get_raw_x()[index], pre.get_files()[index]
    if is_torch_data(data):
        return DatasetInputs.of(data, net.channel), None
    return data[0], None
