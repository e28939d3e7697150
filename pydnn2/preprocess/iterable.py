"""An ``IterableDataset`` (its length unknown until read) as a batch source.

:class:`StreamSource` serves the batches the loop asks for
(:class:`~pydnn2.preprocess.sources.EpochPlan`) from a dataset that yields
its items ``(x, y)`` or ``({channel: x}, y)`` one after another, read by
``DataLoader`` workers (``num_workers`` of them; 0 reads in this process).

**How a stream is shared** (``shards``):

- ``'pydnn2'`` (the default): the dataset yields the whole stream wherever it
  is iterated, and pydnn2 shares it out. The stream is cut into global
  batches of ``batch_size`` items in the order it comes; rank ``r`` of ``W``
  trains on its block of each global batch (as for a map-style set), and of
  those batches worker ``j`` of ``n`` reads every ``n``-th, so that the
  ``DataLoader`` hands them over in stream order. Every reader iterates the
  whole stream, drawing and dropping the items of other readers' batches:
  each item is trained exactly once per epoch, the batches are those of one
  process with no workers (a run on 2 workers or 2 ranks trains the very same
  batches), at the price of producing every item ``n * W`` times. The last
  global batch, when the stream ends inside it, is trained too (each rank an
  even block of it; left out only when it has fewer items than there are
  ranks). After the pass every reader reports how many items it saw and a
  digest of their classes; readers that saw different streams (a dataset
  that shards itself, or draws its order from something other than the
  generators pydnn2 seeds) are a :class:`~pydnn2.errors.DataError`.
- ``'dataset'``: the dataset yields only its own share wherever it is
  iterated: PyTorch's convention, a dataset that shards itself with
  ``torch.utils.data.get_worker_info()`` and the rank
  (:func:`pydnn2.distributed.rank` / :func:`~pydnn2.distributed.world_size`
  read torchrun's environment, in workers too). pydnn2 batches what each
  reader yields (``batch_size / W`` items per rank); that each item lands in
  one share only is the dataset's promise, checked as far as it can be: two
  readers whose whole streams are alike are a DataError.

**Random draws.** Before each item is drawn, torch's, numpy's and Python's
global generators are seeded from the epoch's seed and the item's place in the
stream (in ``'dataset'`` mode, also the reader's), so a dataset that shuffles or
augments at random yields the same stream on every reader, every run and every
resume; this process's own generators are given back after each batch.

**Resuming mid-epoch** fast-forwards: the readers draw the items of the
batches done and drop them without collating, moving or training them (in
``'dataset'`` mode this process drops the first batches whole). torchdata's
``StatefulDataLoader`` would do the same for a dataset without its own
``state_dict``, so the position stays pydnn2's plain ``(shuffle state, batches
done)``.

**Ranks agree on every training batch.** Under torchrun each rank says,
before each batch, whether it has one (one small all-reduce on the control
group, no GPU wait); a rank whose stream ended early, or that failed, is a
DataError on every rank naming the ranks and their batch counts, not a hang.
"""

import dataclasses
from typing import Optional

import torch

from .. import distributed
from ..errors import DataError
from . import workers as pool
from .loader import ItemSpec, _seed_all, collated, item_seed, split_item
from .sources import Batches, BatchSource, Shard

SHARDS = ('pydnn2', 'dataset')
HAVE, ENDED, FAILED = 1.0, 0.0, 2.0          # what a rank says before each batch


@dataclasses.dataclass(frozen=True)
class _Pass:
    """What every reader knows of one pass."""

    size: int                  # items of a global batch (training) or of a batch
    rank: int = 0
    world: int = 1
    start: int = 0             # batches done before (a resumed epoch)
    training: bool = True      # each rank its block of every global batch
    seed: int = 0              # the epoch's seed of item draws
    num_classes: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class _End:
    """What a reader saw of its stream: sent after its last batch."""

    reader: str
    items: int
    digest: int


class _Items:
    """A reader's stream, item by item: each drawn under its own seed, numbered, and its
    class folded into a digest. The draws up to the first item follow from the epoch's
    ``seed`` alone; later items', from the ``reader`` too when given (see the module)."""

    def __init__(self, dataset, seed, name, reader=None, label=None):
        self.dataset, self.seed, self.name = dataset, seed, name
        self.later = seed if reader is None else item_seed(seed, -1 - reader)
        self.iterator, self.index, self.digest = None, 0, 0
        self.of = f" ({label}'s stream)" if label is not None else ''

    def take(self):
        """The next raw item, or None at the end of the stream."""
        _seed_all(item_seed(self.seed if self.index == 0 else self.later, self.index))
        try:
            if self.iterator is None:
                self.iterator = iter(self.dataset)
            item = next(self.iterator)
        except StopIteration:
            return None
        except Exception as exc:
            raise DataError(f'{self.name}, item {self.index}{self.of} raised '
                            f'{type(exc).__name__}: {exc}') from exc
        label = item[1] if isinstance(item, (tuple, list)) and len(item) == 2 else None
        try:
            label = int(torch.as_tensor(label).item())
        except (TypeError, ValueError, RuntimeError):
            label = -1                             # (refused with its item, if it is kept)
        self.digest = (self.digest * 1_000_003 + label + 7) % (2 ** 61 - 1)
        self.index += 1
        return item

    def batch(self, size, skip_to=None):
        """``(items, their indices, ended)``: up to ``size`` items, after dropping the
        items before index ``skip_to``."""
        while skip_to is not None and self.index < skip_to:
            if self.take() is None:
                return [], [], True
        items, indices = [], []
        while len(items) < size:
            index, item = self.index, self.take()
            if item is None:
                return items, indices, True
            items.append(item)
            indices.append(index)
        return items, indices, False


class _StreamReader(torch.utils.data.IterableDataset):
    """The user's stream as one reader's batches (see the module)."""

    def __init__(self, dataset, spec, channel, name, shards, run, collate=None):
        self.dataset, self.spec, self.channel, self.name = dataset, spec, channel, name
        self.shards, self.run, self.collate = shards, run, collate

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        batches = (self._shared(worker, workers) if self.shards == 'pydnn2'
                   else self._own(worker, workers))
        try:
            yield from batches
        except DataError as exc:
            yield pool.Failure(str(exc))

    def _shared(self, worker, workers):
        """The whole stream, keeping this reader's batches (``'pydnn2'``)."""
        run = self.run
        if run.training:                            # global batches start + worker, + n ...
            batch, stride = run.start + worker, workers
        else:                                       # rank r's batches r, r + W ...
            batch, stride = run.rank + (run.start + worker) * run.world, workers * run.world
        items = _Items(self.dataset, run.seed, self.name)
        ended = False
        while not ended:
            with pool.given_back():
                raw, indices, ended = items.batch(run.size, skip_to=batch * run.size)
                start, stop = self._block(len(raw))
                made = (self._made(raw[start:stop], indices[start:stop], f'batch {batch + 1}')
                        if stop > start else None)
            if made is not None:
                yield made
            batch += stride
        yield _End(f'rank {run.rank}, worker {worker}', items.index, items.digest)

    def _block(self, rows):
        """This rank's rows of a batch of ``rows`` items (all of them in evaluation)."""
        run = self.run
        if not run.training:
            return 0, rows
        if rows < run.world:                # a last global batch too small to share
            return 0, 0
        return Shard(run.rank, run.world).block(rows)

    def _own(self, worker, workers):
        """What this reader's dataset yields, batched (``'dataset'``)."""
        run = self.run
        reader = f'rank {run.rank}, worker {worker}'
        slot = run.rank * workers + worker
        items = _Items(self.dataset, run.seed, self.name, slot, reader)
        size = run.size // run.world if run.training else run.size
        ended, number = False, 0
        while not ended:
            with pool.given_back():
                raw, indices, ended = items.batch(size)
                number += 1
                made = (self._made(raw, indices, f'{reader}\'s batch {number}', reader)
                        if raw else None)
            if made is not None:
                yield made
        yield _End(reader, items.index, items.digest)

    def _made(self, raw, indices, what, reader=None):
        """Raw items as a checked batch ``({channel: (b, ...)}, y)``."""
        where = f'{self.name}, {what}'
        of = f' ({reader}\'s stream)' if reader else ''

        def item(row):
            return f'{self.name}, item {indices[row]}{of}'
        if self.collate is not None:
            x, y = collated(self.collate, raw, self.channel, where,
                            item_seed(self.run.seed, -1 - indices[0]))
        else:
            pairs = []
            for row, one in enumerate(raw):
                x, y = split_item(one, self.channel, item(row))
                self.spec.check(x, item(row))
                pairs.append((x, y))
            x = {name: torch.stack([p[0][name] for p in pairs]) for name in pairs[0][0]}
            y = torch.tensor([p[1] for p in pairs], dtype=torch.long)
        self.spec.check_batch(x, y, where, item, self.run.num_classes)
        return x, y


class StreamSource(BatchSource):
    """An IterableDataset's batches, read through a ``DataLoader`` (see the module).

    Parameters
    ----------
    dataset : torch.utils.data.IterableDataset
        Yields ``(x, y)`` or ``({channel: x}, y)``.
    spec : ItemSpec
        What every item must look like (from the first item).
    channel : str
        The channel of an item's ``x`` when it is not a dict.
    name : str
        How errors name the dataset.
    serve : callable, optional
        ``serve(x) -> x`` on the device: the standardisation.
    options : LoaderOptions
        Workers, pinning, prefetching (workers start anew each pass: a pass's
        seed and position travel in the reader the workers are started with).
    shards : {'pydnn2', 'dataset'}
        How the stream is shared between readers (see the module).
    collate : callable, optional
        The user's ``collate_fn``: it sees the raw items of each batch.
    """

    def __init__(self, dataset, spec, channel, name, serve=None, options=None,
                 shards='pydnn2', collate=None):
        self.dataset, self.spec, self.channel, self.name = dataset, spec, channel, name
        self.serve, self.options, self.shards, self.collate = serve, options, shards, collate
        self.broken = False

    @property
    def num_rows(self):
        """None: a stream's length is known only once read."""
        return None

    def close(self):
        """Nothing to let go: a pass's workers end with it."""

    def batches(self, plan):
        """The pass ``plan`` asks for: this rank's batches, read by the loader's workers."""
        seed = (int(torch.randint(2 ** 62, (1,), generator=plan.order))
                if plan.order is not None else 0)
        run = _Pass(plan.batch_size, plan.shard.rank, plan.shard.world,
                    plan.start if self.shards == 'pydnn2' else 0, plan.whole_batches, seed,
                    plan.num_classes)
        reader = _StreamReader(self.dataset, self.spec, self.channel, self.name, self.shards,
                               run, self.collate)
        workers = self.options.workers()
        loader = pool.open_loader(reader, self.options, workers, self.options.pin(plan.device))
        skip = plan.start if self.shards == 'dataset' else 0
        return Batches(self._served(loader, plan, skip, workers), None, plan.start)

    def _served(self, loader, plan, skip, workers):
        with pool.watching(iter(loader), self.name, self) as iterator:
            yield from self._read(iterator, plan, skip, workers)

    def _read(self, iterator, plan, skip, workers):
        agree = plan.whole_batches and plan.shard.world > 1
        ends, step = [], plan.start
        while True:
            batch, failure = _next(iterator, ends, self.name, step + 1)
            if agree:
                agree_on_batch(self.name, step, batch is not None, failure)
            elif failure is not None:
                raise failure
            if batch is None:
                break
            if skip:                            # ('dataset') a resumed epoch's batches done
                skip -= 1
                continue
            step += 1
            x, y = batch
            x = {k: v.to(plan.device, non_blocking=True) for k, v in x.items()}
            yield (self.serve(x) if self.serve is not None else x), y.to(plan.device,
                                                                          non_blocking=True)
        check_ends(self.name, self.shards, ends, agree, workers)


def _next(iterator, ends, name, step):
    """``(batch or None at the end, None)``, or ``(None, the DataError)`` when reading
    failed; the readers' end reports go to ``ends``."""
    try:
        while True:
            batch = pool.raise_failure(next(iterator))
            if not isinstance(batch, _End):
                return batch, None
            ends.append(batch)
    except StopIteration:
        return None, None
    except DataError as exc:
        return None, exc
    except RuntimeError as exc:                 # a worker killed by the system, a timeout
        error = pool.lost_worker(exc, name, step)
        if error is None:
            raise
        return None, error


def agree_on_batch(name, step, have, failure=None):
    """Every rank says whether it has batch ``step + 1`` (or failed reading it); unless
    all agree, every rank raises a DataError naming the ranks and their batch counts."""
    status = FAILED if failure is not None else HAVE if have else ENDED
    high, low = distributed.all_reduce_max([status, -status])
    if high == -low:
        return
    said = distributed.all_gather_objects((status, str(failure) if failure else None))
    if high == FAILED:
        rank, message = next((r, m) for r, (s, m) in enumerate(said) if s == FAILED)
        if failure is not None:
            raise failure
        raise DataError(f'rank {rank} failed reading batch {step + 1}: {message}')
    counts = ', '.join(f'rank {r}: {step + 1 if s == HAVE else step}' + (' or more'
                                                                         if s == HAVE else '')
                       for r, (s, _) in enumerate(said))
    short = [str(r) for r, (s, _) in enumerate(said) if s == ENDED]
    raise DataError(f'{name} ended early on rank {", ".join(short)}: batches per rank: {counts}; '
                    'every rank must yield the same number of training batches')


def check_ends(name, shards, ends, agree, workers):
    """After a whole pass: refuse readers of one shared stream that saw different ones
    (``'pydnn2'``), or readers of own shares that saw the very same one (``'dataset'``).
    Under torchrun in training (``agree``) the ranks compare theirs too."""
    if agree:
        ends = [end for rank_ends in distributed.all_gather_objects(ends) for end in rank_ends]
    if shards == 'pydnn2':
        seen = {(end.items, end.digest) for end in ends}
        if len(seen) > 1:
            told = '; '.join(f'{end.reader}: {end.items} items' for end in ends)
            raise DataError(f'{name} yielded different streams to its readers ({told}): with '
                            "shards='pydnn2' every worker and rank must see the whole stream "
                            "alike; a dataset that shards itself needs shards='dataset'")
        return
    full = [end for end in ends if end.items]
    alike = {(end.items, end.digest) for end in full}
    if len(full) > 1 and len(alike) == 1:
        raise DataError(f"{name} yielded the same {full[0].items} items to each of its "
                        f"{len(full)} readers: with shards='dataset' it must shard itself "
                        '(torch.utils.data.get_worker_info() and the rank); or leave the '
                        "sharing to pydnn2 with shards='pydnn2'")


def first_stream_item(dataset, channel, name, collate=None):
    """Read a stream's first item (seeded as in a pass in order) and return the
    :class:`ItemSpec` it sets; an empty stream is a DataError."""
    with pool.given_back():
        items = _Items(dataset, 0, name)
        item = items.take()
        if item is None:
            raise DataError(f'{name} is empty; it needs at least one item')
        if collate is None:
            return ItemSpec.of(item, channel, f'{name}, item 0')
        where = f'{name}, the batch of item 0 alone'
        return ItemSpec.of_batch(collated(collate, [item], channel, where, item_seed(0, -1)),
                                 channel, where)

