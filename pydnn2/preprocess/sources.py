"""Batch sources: the protocol by which a set's rows reach the training loop.

A preprocessor hands the loop one :class:`BatchSource` per set
(:meth:`~pydnn2.preprocess.Preprocessor.source`). For each pass over the set
the loop makes an :class:`EpochPlan` (how many rows a batch holds, which
rank's share to serve, the generator that draws the order, the batch to start
from, the device) and iterates :meth:`BatchSource.batches`: ``(x, y)`` pairs,
``x`` a dict ``{channel: tensor (b, ...)}`` and ``y`` the int64 classes, on the
plan's device.

**Sharing the rows between ranks.** For training (``whole_batches=True``)
the order is cut into global batches of ``batch_size`` rows (the rows after
the last whole one wait for another shuffle, as in pydnn) and each of the
``W`` ranks takes its contiguous block of every global batch, so the ranks'
rows are disjoint and together make the batch one process would train on.
For evaluation (``whole_batches=False``) each rank takes a contiguous block
of the set, in batches, so that the blocks gathered in rank order are the
set in order.

**Position.** A source draws everything random from the plan's ``order``
generator and from its preprocessor's random state, so the same generator
state, the same preprocessor state and the same ``start`` give the very same
batches again: that triple is an epoch's position, which checkpoints hold
(:class:`~pydnn2.train.session.EpochState`). A resumed epoch starts at batch
``start`` without reading the batches before it.

**Where the data lives** is decided in one place, :func:`resident`: on the
CPU the host is the device; on a GPU a set stays on the device when it takes
at most half its free memory (or as ``data_on_device`` says), else its
batches are read on the host, pinned and copied without blocking.

:class:`TensorSource` is the in-memory implementation (the array and image
preprocessors): rows are read from the arrays the preprocessor holds
(:mod:`pydnn2.preprocess.rows`, never a copy of the set) and made into what
the net sees batch by batch (standardised, augmented) on the device.

>>> import numpy as np, torch
>>> from pydnn2.preprocess.rows import reader
>>> source = TensorSource([{'x': reader(np.arange(10.0).reshape(10, 1))}],
...                       [np.arange(10) % 2])
>>> plan = EpochPlan(batch_size=4, device=torch.device('cpu'), shard=Shard(1, 2))
>>> [b[0]['x'].flatten().tolist() for b in source.batches(plan)]   # rank 1 of 2
[[2.0, 3.0], [6.0, 7.0]]
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

#: The share of a GPU's free memory a set may take and still stay on the device.
DEVICE_FRACTION = 0.5
# The default device of whole sets (a torch.device is immutable: one serves every call).
_CPU = torch.device('cpu')


@dataclasses.dataclass(frozen=True)
class Shard:
    """Which share of the rows this process serves: rank ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1

    def block(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this rank's contiguous block of ``n`` rows: blocks differ
        in size by at most one row and follow each other in rank order."""
        return n * self.rank // self.world, n * (self.rank + 1) // self.world


@dataclasses.dataclass
class EpochPlan:
    """What the loop asks of a source for one pass over a set."""

    batch_size: int                         # rows per global batch (training) or per batch
    device: torch.device = torch.device('cpu')  # where the batches are used
    shard: Shard = Shard()                  # this rank's share of the rows
    order: Optional[torch.Generator] = None  # draws the shuffled order; None: rows in order
    start: int = 0                          # batches to skip (a resumed epoch)
    whole_batches: bool = True              # training: blocks of whole global batches;
    #                                         evaluation (False): a block of the set
    resident: Optional[bool] = None         # the data_on_device option (None: decide)
    num_classes: Optional[int] = None       # classes a streamed item's class must be below

    @property
    def rank_batch(self) -> int:
        """Rows of each batch this rank serves."""
        if not self.whole_batches:
            return self.batch_size
        return self.batch_size // self.shard.world


class BatchSource(abc.ABC):
    """The batches of one set for one rank: the protocol between data and the loop.

    Subclasses implement :attr:`num_rows` and :meth:`batches`; they may
    override :meth:`labels` when the classes are known without reading the
    inputs.
    """

    @property
    @abc.abstractmethod
    def num_rows(self) -> int | None:
        """Rows in the set, or None when unknown until read (a stream)."""

    @abc.abstractmethod
    def batches(self, plan: EpochPlan) -> Batches:
        """The batches of one pass over the set, as ``plan`` asks (see the module)."""

    def labels(self) -> np.ndarray | None:
        """The classes of the set in row order, when known without reading it."""
        return None

    @property
    def varies(self) -> bool:
        """Whether passes differ (an augmentation drawn per pass); False by default."""
        return False

    def whole(self, device: str | torch.device = _CPU
              ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The whole set as one ``(x, y)`` pair, in row order (pydnn's ``get_train``
        and friends): every batch of one in-order pass, concatenated."""
        parts = list(self.batches(EpochPlan(batch_size=4096, device=torch.device(device),
                                            whole_batches=False)))
        if not parts:
            return {}, torch.zeros(0, dtype=torch.long)
        return ({k: torch.cat([x[k] for x, _ in parts]) for k in parts[0][0]},
                torch.cat([y for _, y in parts]))


class Batches:
    """One pass over a set: iterable once, with ``len`` (None when unknown) and
    ``steps_done`` (batches served so far, counting the skipped ones)."""

    def __init__(self, iterator: Iterator, steps: int | None, start: int = 0) -> None:
        self._iterator, self.steps, self.steps_done = iterator, steps, start

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        for batch in self._iterator:
            self.steps_done += 1
            yield batch

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError('a stream of unknown length has no len()')
        return self.steps

    def close(self) -> None:
        """End the pass here, read to the end or not: a source reading through
        ``DataLoader`` workers lets them go at once (``with batches:`` does it too)."""
        close = getattr(self._iterator, 'close', None)
        if close is not None:
            close()

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resident(device: str | torch.device, nbytes: int, option: bool | None = None,
             fraction: float = DEVICE_FRACTION) -> bool:
    """Whether a set of ``nbytes`` stays on ``device`` for the whole run (True) or
    streams to it batch by batch (False): always on the CPU; on another device as
    ``option`` says, else when it takes at most ``fraction`` of the free memory.
    The one place where pydnn2 decides where data lives."""
    device = torch.device(device)
    if device.type == 'cpu':
        return True
    if option is not None:
        return bool(option)
    if device.type != 'cuda':
        return True
    return nbytes <= fraction * torch.cuda.mem_get_info(device)[0]


def batch_rows(n: int, plan: EpochPlan,
               order: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The row indices of each batch ``plan`` asks for, from batch ``plan.start`` on:
    a list of int64 tensors (see the module for the split between ranks)."""
    if order is None:
        order = (torch.randperm(n, generator=plan.order) if plan.order is not None
                 else torch.arange(n))
    if plan.whole_batches:
        size = plan.batch_size
        steps = n // size
        start, stop = plan.shard.block(size)
        blocks = order[:steps * size].view(steps, size)[:, start:stop]     # (steps, G / W)
        return list(blocks[plan.start:])
    start, stop = plan.shard.block(n)
    mine = order[start:stop]
    return list(torch.split(mine, plan.batch_size))[plan.start:] if len(mine) else []


class TensorSource(BatchSource):
    """In-memory rows, made into what the net sees batch by batch.

    Parameters
    ----------
    parts : list of dict
        One dict ``{channel: reader}`` per part (:mod:`pydnn2.preprocess.rows`);
        the parts are served as one set, rows numbered part after part (the
        final epochs' train + valid + test), never concatenated.
    labels : list of array
        The classes of each part.
    serve : callable, optional
        ``serve(x, rows, epoch) -> x``: the batch's channels as read (on the
        device) made into what the net sees; ``rows`` are the batch's row
        numbers and ``epoch`` what ``begin`` returned. By default ``x`` as read.
    begin : callable, optional
        Called once per pass (its result is ``serve``'s ``epoch``): where a
        preprocessor draws the epoch's augmentation.
    """

    def __init__(self, parts: list[dict[str, Any]], labels: list[np.ndarray],
                 serve: Callable | None = None, begin: Callable | None = None) -> None:
        self.parts, self._labels = parts, [np.asarray(y, np.int64) for y in labels]
        self.serve, self.begin = serve, begin
        self.bounds = np.cumsum([0] + [len(y) for y in self._labels])
        self._y = torch.from_numpy(np.concatenate(self._labels) if self._labels
                                   else np.zeros(0, np.int64))
        self._device: dict[torch.device, tuple] = {}   # device -> parts and labels held there

    @property
    def num_rows(self) -> int:
        """Rows in the set (all parts)."""
        return int(self.bounds[-1])

    @property
    def nbytes(self) -> int:
        """Bytes the rows take as read."""
        return sum(r.nbytes for part in self.parts for r in part.values()) + self._y.nbytes

    def labels(self) -> np.ndarray:
        """The classes of every row, in order."""
        return self._y.numpy()

    @property
    def varies(self) -> bool:
        """Whether each pass draws its own augmentation."""
        return self.begin is not None

    def batches(self, plan: EpochPlan) -> Batches:
        """The pass ``plan`` asks for (see the module)."""
        epoch = self.begin() if self.begin is not None else None
        rows = batch_rows(self.num_rows, plan)
        held = resident(plan.device, self.nbytes, plan.resident)
        steps = plan.start + len(rows)
        return Batches((self._batch(r, plan.device, held, epoch) for r in rows), steps,
                       plan.start)

    def whole(self, device: str | torch.device = _CPU
              ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The whole set as one ``(x, y)`` pair, in row order (one pass: an augmenting
        source draws its next augmentation)."""
        device = torch.device(device)
        epoch = self.begin() if self.begin is not None else None
        return self._batch(torch.arange(self.num_rows), device,
                           resident(device, self.nbytes), epoch)

    def _on_device(self, device: torch.device) -> tuple:
        """The parts as tensors on ``device`` (copied there once)."""
        if device not in self._device:
            parts = [{k: r.take(np.arange(len(r))).to(device) for k, r in part.items()}
                     for part in self.parts]
            self._device[device] = (parts, self._y.to(device))
        return self._device[device]

    def _batch(self, rows: torch.Tensor, device: torch.device, held: bool,
               epoch: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Rows ``rows`` as ``(x, y)`` on ``device``."""
        if held and device.type != 'cpu':
            parts, y = self._on_device(device)
            x = _gather([{k: _Held(t) for k, t in p.items()} for p in parts], self.bounds,
                        rows.to(device))
            y = y[rows.to(device)]
        else:
            x, y = _gather(self.parts, self.bounds, rows), self._y[rows]
            if device.type != 'cpu':
                pin = device.type == 'cuda'
                x = {k: (v.pin_memory() if pin else v).to(device, non_blocking=True)
                     for k, v in x.items()}
                y = (y.pin_memory() if pin else y).to(device, non_blocking=True)
        if self.serve is not None:
            x = self.serve(x, rows, epoch)
        return x, y


class _Held:
    """A tensor (on any device), read as a reader is."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes

    def take(self, index: Any) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.long, device=self.tensor.device)
        return self.tensor.index_select(0, index)


def _gather(parts: list[dict[str, Any]], bounds: np.ndarray,
            rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``rows`` (numbered part after part) of every channel, in the order given."""
    if len(parts) == 1:
        return {k: r.take(rows) for k, r in parts[0].items()}
    out: dict[str, torch.Tensor] = {}
    for i, part in enumerate(parts):
        mask = (rows >= int(bounds[i])) & (rows < int(bounds[i + 1]))
        if not bool(mask.any()):
            continue
        local = rows[mask] - int(bounds[i])
        for k, r in part.items():
            values = r.take(local)
            if k not in out:
                out[k] = values.new_empty((len(rows),) + tuple(values.shape[1:]))
            out[k][mask] = values
    return out


class WholeSetSource(BatchSource):
    """A source over a function returning a whole set ``(x, y)`` of tensors each pass
    (a preprocessor written for pydnn2 0.2's whole-set protocol).

    Parameters
    ----------
    whole : callable
        Returns the set ``(x, y)``; called once per pass.
    varies : bool
        Whether each call gives a new augmentation (call it once per pass).
    """

    def __init__(self, whole: Callable[[], tuple[Any, Any]], varies: bool = False) -> None:
        self._whole, self._varies = whole, varies
        self._rows: int | None = None

    @property
    def num_rows(self) -> int:
        """Rows in the set (read by one call, when unknown)."""
        if self._rows is None:
            self._rows = len(self._whole()[1])
        return self._rows

    @property
    def varies(self) -> bool:
        """Whether each pass draws its own augmentation."""
        return self._varies

    def labels(self) -> np.ndarray:
        """The classes of the set (one call)."""
        return torch.as_tensor(self._whole()[1]).cpu().numpy()

    def batches(self, plan: EpochPlan) -> Batches:
        """One pass: one call, then the set as an in-memory :class:`TensorSource` would
        serve it."""
        x, y = self._whole()
        self._rows = len(y)
        rows = {k: _Held(torch.as_tensor(v)) for k, v in x.items()}
        source = TensorSource([rows], [torch.as_tensor(y).cpu().numpy()])
        return source.batches(plan)
