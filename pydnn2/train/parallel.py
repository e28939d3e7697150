"""Data-parallel training: what the loop does differently when torchrun starts several ranks.

Under ``torchrun`` the same script runs once per rank; :func:`start`
initialises the process group (:mod:`pydnn2.distributed`) and the loop then
trains data-parallel:

- **Batches.** The global batch is the net's ``batch_size``, split evenly:
  each of ``W`` ranks trains on ``batch_size / W`` rows of every batch
  (``per_rank_batch=True``: ``batch_size`` rows each, a global batch of
  ``batch_size * W``). Every rank draws the same shuffled order (rank 0's
  generators are shared at the start) and takes its contiguous block of each
  global batch (the batch sources cut it: :mod:`pydnn2.preprocess.sources`), so
  the ranks' rows are disjoint and
  together they are the single-process batch.
- **Gradients.** The module is wrapped in ``DistributedDataParallel`` for
  the training steps (:func:`wrap`): the averaged gradient is the gradient of
  the global batch's mean loss. ``net.module`` stays the plain module, for
  files and prediction.
- **Random draws.** Dropout draws from torch's global generator seeded with
  the net's seed plus the rank; augmentation is drawn once per epoch from the
  shared seed (the single-process draws) and each rank trains its own rows of it.
- **Figures every rank agrees on.** Batch losses are averaged and error counts
  added over ranks (:func:`reduce_batches`); validation and test sets are
  split into blocks and their sums added (:func:`evaluate_set`), metrics see the
  gathered probabilities (:func:`metric_values`); an epoch's seconds are the
  slowest rank's. Histories, annealers, early stops and best-net decisions are
  then the same everywhere. A stop asked for by a signal is voted on every
  :data:`VOTE_EVERY` batches, so every rank stops after the same batch.
- **One writer.** Rank 0 alone writes checkpoints (holding every rank's dropout
  generator), best and final nets; the others wait until the file is written
  (:func:`write_checkpoint`).
"""

import signal

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import distributed, files, rng as rngs
from ..errors import ConfigError
from ..evaluate.inference import source_probabilities, source_sums
from ..preprocess.sources import EpochPlan, Shard, batch_rows
from . import checkpoints, compat

#: A stop requested by a signal is agreed on every this many batches (a collective each).
VOTE_EVERY = 16


def start(net, config):
    """Under torchrun: initialise the process group (once), check that the batch
    splits over the ranks, and give every rank rank 0's random generators. Returns
    whether training runs data-parallel."""
    if not distributed.init(net.device):
        return False
    distributed.check_same_data(compat.data_fingerprint(net.preprocessor),
                                {name: net.preprocessor.num_rows(name) for name in compat.SETS})
    distributed.check_split(net.batch_size, net.preprocessor.num_rows('train'),
                            distributed.world_size(), config.per_rank_batch)
    share_random_state(net)
    return True


def share_random_state(net):
    """Give every rank rank 0's net ``rng`` and preprocessor random state (the same
    shuffles and augmentations however each process seeded them)."""
    state = distributed.broadcast({'net_rng': rngs.numpy_state(net.rng),
                                   'preprocessor': files.plain_tree(net.preprocessor.get_state())})
    if not distributed.is_writer():
        rngs.set_numpy_state(net.rng, state['net_rng'])
        net.preprocessor.set_state(state['preprocessor'])


def wrap(module, device):
    """``module`` in ``DistributedDataParallel`` (on CUDA, for its device alone)."""
    device = torch.device(device)
    if device.type != 'cuda':
        return DistributedDataParallel(module)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(module, device_ids=[index], output_device=index)


def sync_batch_norm(module, device):
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


def rank_order(order, global_batch):
    """This rank's rows of each global batch of ``order``, batch after batch: a tensor
    of ``steps * global_batch / W`` rows (the tail after the last full batch is left
    out, as in one process); :func:`pydnn2.preprocess.sources.batch_rows` cuts them."""
    plan = EpochPlan(batch_size=global_batch, shard=current_shard())
    rows = batch_rows(len(order), plan, order)
    return torch.cat(rows) if rows else order[:0]


def current_shard():
    """This process's :class:`~pydnn2.preprocess.sources.Shard` of the process group (rank
    0 of 1 outside torchrun)."""
    return Shard(distributed.rank(), distributed.world_size())


def should_stop(session, done):
    """Whether training stops before the next batch, ``done`` batches into this call of
    ``train_batches``: the session's own request in one process; over several ranks
    the ranks vote every :data:`VOTE_EVERY` batches (and before the first), and all
    stop when any asked to."""
    if not session.parallel:
        return session.stop_requested
    if done % VOTE_EVERY:
        return False
    local = (signal.Signals[session.stop_signal].value if session.stop_signal
             else int(session.stop_requested))
    agreed = int(distributed.all_reduce_max([local])[0])
    if agreed and not session.stop_requested:
        session.stop_requested = True
        session.stop_signal = next((s.name for s in signal.Signals if s.value == agreed), None)
    return bool(agreed)


def any_rank(session, flag):
    """``flag`` if any rank raised it (a collective when training is data-parallel)."""
    if not session.parallel:
        return flag
    return bool(distributed.all_reduce_max([float(bool(flag))])[0])


def slowest(session, seconds):
    """The largest of the ranks' ``seconds``."""
    return distributed.all_reduce_max([seconds])[0] if session.parallel else seconds


def reduce_batches(session, losses, first, step, errors, rows):
    """The figures of batches ``first .. step - 1`` every rank agrees on: their losses
    averaged over the ranks (in place in ``losses``), the error count (a device
    tensor) and the rows trained summed; returns the count and the rows as ints."""
    if session.parallel:
        distributed.broadcast_buffers(session.net.module)
        losses[first:step] = distributed.all_reduce_sum(losses[first:step]) \
            / distributed.world_size()
        both = distributed.all_reduce_sum(torch.stack([errors, torch.tensor(
            rows, dtype=errors.dtype, device=errors.device)]))
        return int(both[0].item()), int(both[1].item())
    return int(errors.item()), rows


def evaluate_set(session, source):
    """``(mean loss, error rate)`` of a batch source, as
    :func:`pydnn2.evaluate.inference.evaluate_source`; over several ranks each evaluates
    its block and the sums are added (equal to one process's up to the order of the
    sums). ``(None, None)`` for an empty set."""
    net = session.net
    loss, errors, rows = source_sums(net, source, session.shard)
    if session.parallel:
        sums = distributed.all_reduce_sum(
            torch.stack([loss.double(), errors.double(),
                         torch.tensor(float(rows), dtype=torch.float64, device=loss.device)]))
        loss, errors, rows = sums[0], sums[1], int(sums[2].item())
    if rows == 0:
        return None, None
    return loss.item() / rows, errors.item() / rows


def metric_values(session, source, metrics):
    """``{name: value}`` of ``metrics`` on a batch source, as
    :func:`pydnn2.evaluate.metric_values`; over several ranks each computes the
    probabilities of its block, gathered in row order before the metrics see them."""
    p, y = source_probabilities(session.net, source, session.shard)
    if session.parallel:
        p, y = distributed.all_gather_rows(p), distributed.all_gather_rows(y)
    for metric in metrics:
        metric.reset()
        if len(y):
            metric.update(p, y.to(p.device))
    return {metric.name: metric.result() for metric in metrics}


def write_checkpoint(session, unfinished=None):
    """:func:`pydnn2.train.checkpoints.write`, by rank 0 alone when data-parallel (with
    every rank's torch generators); every rank returns once the file is written (and
    raises what writing it raised)."""
    if not session.parallel:
        return checkpoints.write(session, unfinished)
    session.rank_rngs = distributed.all_gather_objects(rngs.torch_states())
    try:
        return distributed.on_writer(lambda: checkpoints.write(session, unfinished))
    finally:
        session.rank_rngs = None


def restore_torch_states(state, rank, device):
    """Give torch's global generators rank ``rank``'s saved states from a checkpoint's
    ``rng`` entry. A checkpoint of fewer ranks (one process's, for instance) has none
    for the extra ranks: theirs are seeded from a draw of rank 0's saved generator
    plus the rank (reproducible, but not the draws of an uninterrupted run)."""
    ranks = state.get('ranks') or [state]
    if rank < len(ranks):
        rngs.set_torch_states(ranks[rank])
        return
    generator = torch.Generator()
    generator.set_state(state['torch'])
    seed = int(torch.randint(rngs.SEED_LIMIT, (1,), generator=generator))
    rngs.seed_torch((seed + rank) % rngs.SEED_LIMIT, device)
