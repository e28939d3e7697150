"""How the processes of one training run share the work: one process, or data-parallel.

A :class:`Strategy` is everything the training loop asks of the ranks, so
that the loop never asks whether training is parallel (as Lightning's
``Strategy``): it sets the run up, wraps the module, hands out the rank's
:class:`~pydnn2.preprocess.sources.Shard` of every batch, reduces the figures
every rank must agree on, takes decisions any rank may ask for
(:meth:`Strategy.reduce_boolean_decision`, the stop vote), writes on rank 0
(:meth:`Strategy.on_writer`) and gathers and restores every rank's random
generators for checkpoints. The base class does all of it in terms of five
collectives; :class:`SingleProcess` implements them as the identity and
:class:`DataParallel` over ``torch.distributed``.

Data-parallel training under ``torchrun`` (:func:`select` picks it when
torchrun's environment is there):

- **Batches.** The global batch is the net's ``batch_size``, split evenly:
  each of ``W`` ranks trains on ``batch_size / W`` rows of every batch
  (``per_rank_batch=True``: ``batch_size`` rows each). Every rank draws the
  same shuffled order (rank 0's generators are shared at the start) and takes
  its contiguous block of each global batch (the batch sources cut it), so
  together the ranks train the single-process batch.
- **Gradients.** The module trains inside ``DistributedDataParallel``
  (:meth:`DataParallel.wrap`); ``net.module`` stays the plain module.
- **Random draws.** Dropout draws from torch's global generator seeded with
  the net's seed plus the rank; augmentation is drawn once per epoch from the
  shared seed and each rank trains its own rows of it.
- **Figures every rank agrees on.** Batch losses are averaged and error counts
  added; evaluation sums are added and metric probabilities gathered in row
  order; an epoch's seconds are the slowest rank's. A stop is voted on every
  :data:`VOTE_EVERY` batches, so every rank stops after the same batch.
- **One writer.** Rank 0 alone writes; the others wait for the file.

>>> strategy = SingleProcess()
>>> strategy.shard, strategy.is_writer, strategy.reduce_boolean_decision(False, all=False)
(Shard(rank=0, world=1), True, False)
"""

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import distributed, rng as rngs
from ..errors import ConfigError
from ..evaluate.inference import source_probabilities, source_sums
from ..preprocess.sources import Shard
from . import compat

#: Data-parallel ranks agree on a stop request every this many batches (a collective each).
VOTE_EVERY = 16


class Strategy:
    """What the ranks of a training run share; subclasses implement the collectives.

    Attributes
    ----------
    shard : pydnn2.preprocess.sources.Shard
        This process's share of every batch (rank ``shard.rank`` of ``shard.world``).
    vote_every : int
        Batches between two votes on a stop request.
    """

    vote_every = 1

    def __init__(self, shard=None):
        self.shard = Shard() if shard is None else shard

    # -- the collectives -------------------------------------------------------------

    def all_reduce_sum(self, tensor):
        """The sum over ranks of ``tensor`` (a new tensor)."""
        raise NotImplementedError(f'{type(self).__name__} must implement all_reduce_sum')

    def all_reduce_max(self, values):
        """The largest of each number of the list ``values`` over ranks."""
        raise NotImplementedError(f'{type(self).__name__} must implement all_reduce_max')

    def all_gather_rows(self, tensor):
        """Every rank's rows of ``tensor``, concatenated in rank order."""
        raise NotImplementedError(f'{type(self).__name__} must implement all_gather_rows')

    def all_gather_objects(self, obj):
        """Every rank's picklable ``obj``, as a list in rank order."""
        raise NotImplementedError(f'{type(self).__name__} must implement all_gather_objects')

    def on_writer(self, function):
        """``function()`` on rank 0 alone, its result (or its error) on every rank: the
        one way files are written."""
        raise NotImplementedError(f'{type(self).__name__} must implement on_writer')

    # -- what the loop asks ------------------------------------------------------------

    @property
    def is_writer(self):
        """Whether this process prints and writes files (rank 0)."""
        return self.shard.rank == 0

    def setup(self, net, config):
        """Check that the run can start on these ranks (nothing to check in one process)."""

    def global_batch(self, batch_size, per_rank_batch=False):
        """Rows of each global batch: ``batch_size``, or ``batch_size`` per rank."""
        return batch_size * (self.shard.world if per_rank_batch else 1)

    def wrap(self, module, device, sync_batch_norm=False):
        """The module the training steps run (``module`` itself in one process)."""
        return module

    def close(self):
        """Let go of what :meth:`wrap` made."""

    def dropout_seed(self, seed):
        """The seed of this rank's dropout generator: ``seed`` plus the rank."""
        return (seed + self.shard.rank) % rngs.SEED_LIMIT

    def reduce_boolean_decision(self, decision, all=True):
        """Whether every rank (``all=True``) or any rank (``all=False``) decided True."""
        flag = float(bool(decision))
        if all:
            return -self.all_reduce_max([-flag])[0] > 0
        return self.all_reduce_max([flag])[0] > 0

    def should_stop(self, stop, done):
        """Whether training stops before the next batch, ``done`` batches into a pass:
        the ranks vote every :attr:`vote_every` batches (and before the first) on
        ``stop`` (a :class:`~pydnn2.train.stop.StopRequest`), and all stop when any
        asked to; a rank that did not ask (or asked without a signal another rank
        had) takes over the request it agreed to, so every rank's request is alike."""
        if done % self.vote_every:
            return False
        agreed = int(self.all_reduce_max([stop.code])[0])
        if agreed > stop.code:             # another rank's request, or its signal
            stop.adopt(agreed)
        return bool(agreed)

    def slowest(self, seconds):
        """The largest of the ranks' ``seconds``."""
        return self.all_reduce_max([seconds])[0]

    def reduce_batches(self, losses, first, step, errors, rows):
        """The figures of batches ``first .. step - 1`` every rank agrees on: their losses
        averaged over the ranks (in place in ``losses``), the error count (a device
        tensor) and the rows trained summed; returns the count and the rows as ints."""
        losses[first:step] = self.all_reduce_sum(losses[first:step]) / self.shard.world
        both = self.all_reduce_sum(torch.stack([errors, torch.tensor(
            rows, dtype=errors.dtype, device=errors.device)]))
        return int(both[0].item()), int(both[1].item())

    def evaluate(self, net, source):
        """``(mean loss, error rate)`` of a batch source, each rank evaluating its block
        (equal to one process's up to the order of the sums); ``(None, None)`` for an
        empty set."""
        loss, errors, rows = source_sums(net, source, self.shard)
        sums = self.all_reduce_sum(torch.stack([
            loss.double(), errors.double(),
            torch.tensor(float(rows), dtype=torch.float64, device=loss.device)]))
        rows = int(sums[2].item())
        if rows == 0:
            return None, None
        return sums[0].item() / rows, sums[1].item() / rows

    def metric_values(self, net, source, metrics):
        """``{name: value}`` of ``metrics`` on a batch source; each rank computes the
        probabilities of its block, gathered in row order before the metrics see them."""
        p, y = source_probabilities(net, source, self.shard)
        p, y = self.all_gather_rows(p), self.all_gather_rows(y)
        for metric in metrics:
            metric.reset()
            if len(y):
                metric.update(p, y.to(p.device))
        return {metric.name: metric.result() for metric in metrics}

    def rank_rng_states(self):
        """Every rank's torch generator states, for a checkpoint (a collective)."""
        return self.all_gather_objects(rngs.torch_states())

    def restore_rng_states(self, state, device):
        """Give torch's global generators this rank's saved states from a checkpoint's
        ``rng`` entry. A checkpoint of fewer ranks has none for the extra ranks: theirs
        are seeded from a draw of rank 0's saved generator plus the rank (reproducible,
        but not the draws of an uninterrupted run)."""
        ranks, rank = state.get('ranks') or [state], self.shard.rank
        if rank < len(ranks):
            rngs.set_torch_states(ranks[rank])
            return
        generator = torch.Generator()
        generator.set_state(state['torch'])
        seed = int(torch.randint(rngs.SEED_LIMIT, (1,), generator=generator))
        rngs.seed_torch((seed + rank) % rngs.SEED_LIMIT, device)


class SingleProcess(Strategy):
    """Training in this process alone: every collective gives its input back."""

    def all_reduce_sum(self, tensor):
        """``tensor`` itself (one rank's sum)."""
        return tensor

    def all_reduce_max(self, values):
        """``values`` themselves, as a list."""
        return list(values)

    def all_gather_rows(self, tensor):
        """``tensor`` itself."""
        return tensor

    def all_gather_objects(self, obj):
        """``[obj]``."""
        return [obj]

    def on_writer(self, function):
        """``function()``: this process writes."""
        return function()

    def rank_rng_states(self):
        """None: one process's generators are the checkpoint's own."""
        return None


class DataParallel(Strategy):
    """Data-parallel training over the ranks of the ``torch.distributed`` group that
    torchrun's environment describes (gloo on the CPU, NCCL on CUDA)."""

    vote_every = VOTE_EVERY

    def __init__(self):
        super().__init__(Shard(distributed.rank(), distributed.world_size()))
        self._unsync = None
        self._module = None         # the plain module wrap() wrapped

    all_reduce_sum = staticmethod(distributed.all_reduce_sum)
    all_reduce_max = staticmethod(distributed.all_reduce_max)
    all_gather_rows = staticmethod(distributed.all_gather_rows)
    all_gather_objects = staticmethod(distributed.all_gather_objects)
    on_writer = staticmethod(distributed.on_writer)

    def setup(self, net, config):
        """Check that every rank holds the same data and that the batch splits over the
        ranks, then give every rank rank 0's random generators (the same shuffles and
        augmentations everywhere)."""
        pre = net.preprocessor
        distributed.check_same_data(compat.data_fingerprint(pre),
                                    {name: pre.num_rows(name) for name in compat.SETS})
        distributed.check_split(net.batch_size, pre.num_rows('train'), self.shard.world,
                                config.per_rank_batch)
        share_random_state(net)

    def reduce_batches(self, losses, first, step, errors, rows):
        """As :meth:`Strategy.reduce_batches`, after every rank has taken rank 0's module
        buffers (batch norm's running averages: DDP broadcasts them only at the start of
        each forward), so that every rank validates, predicts and ends with the
        statistics rank 0 writes into the files."""
        if self._module is not None:
            distributed.broadcast_buffers(self._module)
        return super().reduce_batches(losses, first, step, errors, rows)

    def wrap(self, module, device, sync_batch_norm=False):
        """``module`` in ``DistributedDataParallel`` (on CUDA, for its device alone), its
        batch norm synchronised over the ranks with ``sync_batch_norm``."""
        self._module = module
        if sync_batch_norm:
            self._unsync = convert_sync_batch_norm(module, device)
        device = torch.device(device)
        if device.type != 'cuda':
            return DistributedDataParallel(module)
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(module, device_ids=[index], output_device=index)

    def close(self):
        """Put back the batch-norm layers ``sync_batch_norm`` replaced."""
        if self._unsync is not None:
            self._unsync()
            self._unsync = None


def select(net, config):
    """The strategy of a run of ``net``: :class:`DataParallel` under torchrun (the
    process group initialised once), else :class:`SingleProcess`; set up."""
    strategy = DataParallel() if distributed.init(net.device) else SingleProcess()
    strategy.setup(net, config)
    return strategy


def share_random_state(net):
    """Give every rank rank 0's net ``rng`` and preprocessor random state."""
    state = distributed.broadcast(rngs.snapshot(net, torch_globals=False))
    if not distributed.is_writer():
        rngs.restore(state, net)


def convert_sync_batch_norm(module, device):
    """Replace ``module``'s batch-norm layers (``torch.nn.BatchNorm1d/2d/3d``) by
    ``SyncBatchNorm`` layers sharing their weights and buffers, so that batch statistics
    are taken over every rank's rows; returns a function that puts the originals back.
    CUDA only (torch's ``SyncBatchNorm`` runs on GPUs)."""
    if torch.device(device).type != 'cuda':
        raise ConfigError('sync_batch_norm=True needs a CUDA net: torch.nn.SyncBatchNorm '
                          f'runs on GPUs only; received a net on {device}')
    kinds = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    found = [(parent, name, child) for parent in module.modules()
             for name, child in parent.named_children() if type(child) in kinds]
    for parent, name, child in found:
        setattr(parent, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))

    def restore():
        for parent, name, child in found:
            setattr(parent, name, child)
    return restore


def process_is_writer():
    """Whether this process is rank 0 of an initialised ``torch.distributed`` group, or
    not in one (outside a training run, where no strategy says)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
