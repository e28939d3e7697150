"""Several processes, one training: torchrun's environment and the collectives pydnn2 uses.

Under ``torchrun`` every process runs the same script, and torchrun tells
each one who it is through the environment: ``RANK`` (0 .. ``WORLD_SIZE`` - 1
over all machines), ``WORLD_SIZE``, ``LOCAL_RANK`` (its number on its
machine), ``MASTER_ADDR`` and ``MASTER_PORT`` (where the group meets).
:func:`init` reads it and initialises ``torch.distributed`` once: gloo for a
net on the CPU, NCCL for one on CUDA, where each process takes the device
``cuda:LOCAL_RANK`` (:func:`default_device`, a net's default device).
``train`` calls it when it starts.

Without torchrun's environment nothing here starts anything: the process
is rank 0 of a world of 1, :func:`is_writer` is True and every collective
gives its input back, so single-process code pays nothing.

The collectives (every rank must call them, in the same order):
:func:`all_reduce_sum` and :func:`all_reduce_max` (the same numbers on every
rank), :func:`all_gather_rows` (each rank's block of rows, concatenated in
rank order: with :func:`shard`'s contiguous blocks that is the original row
order), :func:`all_gather_objects`, :func:`broadcast` (rank 0's object),
:func:`on_writer` (run on rank 0, its result or error everywhere),
:func:`broadcast_buffers` (rank 0's module buffers), :func:`check_same_data`
(every rank holds the same sets) and :func:`barrier`. Small control values and
objects travel over a gloo group even when the tensors go over NCCL, so they
never wait for the GPU. A collective waits at most :data:`COLLECTIVE_TIMEOUT`
seconds for the other ranks.

>>> rank(), world_size(), is_writer()
(0, 1, True)
>>> shard(list(range(10)))
[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
>>> block(10, part=1, parts=4)
(2, 5)
"""

import atexit
import datetime
import os
import pickle
import sys

import torch
from torch import distributed as dist

from .errors import ConfigError, DataError

FINISH_TIMEOUT = 30     # seconds the ranks wait for each other at the end
#: Seconds a collective waits for the other ranks before it raises (gloo's and NCCL's
#: default is 30 minutes). A rank that fails exits and torchrun (or ``launch``) ends the
#: others within seconds; this bounds the wait for a rank that hangs without failing.
COLLECTIVE_TIMEOUT = 300

_CONTROL = {}        # 'group': the gloo group for control values when the backend is NCCL


def environment():
    """torchrun's variables as a dict (``rank``, ``world_size``, ``local_rank``,
    ``master_addr``, ``master_port``, ``restart_count``), or None outside torchrun."""
    env = os.environ
    if 'RANK' not in env or 'WORLD_SIZE' not in env:
        return None
    return {'rank': int(env['RANK']), 'world_size': int(env['WORLD_SIZE']),
            'local_rank': int(env.get('LOCAL_RANK', 0)),
            'master_addr': env.get('MASTER_ADDR'), 'master_port': env.get('MASTER_PORT'),
            'restart_count': int(env.get('TORCHELASTIC_RESTART_COUNT', 0))}


def active():
    """Whether a process group is initialised (by :func:`init` or by the user)."""
    return dist.is_available() and dist.is_initialized()


def rank():
    """This process's rank: the group's, else torchrun's ``RANK``, else 0."""
    if active():
        return dist.get_rank()
    env = environment()
    return env['rank'] if env else 0


def world_size():
    """The number of processes: the group's, else torchrun's ``WORLD_SIZE``, else 1."""
    if active():
        return dist.get_world_size()
    env = environment()
    return env['world_size'] if env else 1


def local_rank():
    """This process's number on its machine (torchrun's ``LOCAL_RANK``), else 0."""
    env = environment()
    return env['local_rank'] if env else 0


def is_writer():
    """True on the one process that prints and writes files: rank 0 (or the only one)."""
    return rank() == 0


def default_device():
    """CUDA when available (under torchrun ``cuda:LOCAL_RANK``, one device per process),
    else the CPU."""
    if not torch.cuda.is_available():
        return torch.device('cpu')
    if environment() is not None:
        return torch.device('cuda', local_rank() % torch.cuda.device_count())
    return torch.device('cuda')


def init(device='cpu'):
    """Initialise the process group from torchrun's environment, once; returns whether
    a group is active. gloo for a CPU ``device``; NCCL for a CUDA one, which becomes
    this process's current device. Outside torchrun (and when a group exists
    already) nothing is done."""
    if active() or environment() is None or not dist.is_available():
        return active()
    device = torch.device(device)
    store, rank_, world = _store()
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT)
    if device.type == 'cuda':
        torch.cuda.set_device(device if device.index is not None else local_rank())
        dist.init_process_group('nccl', store=store, rank=rank_, world_size=world,
                                timeout=timeout)
        _CONTROL['group'] = dist.new_group(backend='gloo', timeout=timeout)
    else:
        dist.init_process_group('gloo', store=store, rank=rank_, world_size=world,
                                timeout=timeout)
    atexit.register(finish_at_exit)
    return True


def finish_at_exit():
    """:func:`finish` as the interpreter exits (registered by :func:`init`): together
    with the other ranks unless the script is ending by an uncaught exception (which
    Python records in ``sys.last_value`` before it runs the exit handlers), so that a
    rank that ended well never tears its connections down while a peer is still in
    the last exchange (gloo then aborts that peer: "terminate called without an
    active exception")."""
    failed = getattr(sys, 'last_exc', None) or getattr(sys, 'last_value', None)
    finish(together=failed is None)


def _store():
    """torchrun's store (``env://``), under a prefix of each restart's own: the ranks of a
    group restarted by ``torchrun --max-restarts`` share the store of the group that
    failed, and must not read the addresses its dead ranks published there."""
    store, rank_, world = next(dist.rendezvous('env://'))
    restart = environment()['restart_count']
    return dist.PrefixStore(f'pydnn2/restart_{restart}/', store), rank_, world


def finish(together=False):
    """Destroy the process group :func:`init` made (at exit; safe to call twice).

    With ``together`` (ranks that all ended well) they first meet at a barrier,
    given up after ``FINISH_TIMEOUT`` seconds: a rank that tears its
    connections down while a peer is still finishing the last exchange can
    make gloo abort that peer ("terminate called without an active
    exception")."""
    if active():
        if together:
            try:
                dist.monitored_barrier(group=_CONTROL.get('group'),
                                       timeout=datetime.timedelta(seconds=FINISH_TIMEOUT))
            except Exception:  # noqa: BLE001 - a peer is gone: nothing left to wait for
                pass
        dist.destroy_process_group()
    _CONTROL.clear()


def _group(tensor=None):
    """The group a collective on ``tensor`` uses: the control group for CPU tensors and
    objects when the backend is NCCL, else the default group."""
    if tensor is not None and tensor.device.type != 'cpu':
        return None
    return _CONTROL.get('group')


def block(n, part=None, parts=None):
    """``(start, stop)`` of the contiguous block of ``n`` rows that rank ``part`` takes
    of ``parts`` (by default this process's rank and the world size): blocks differ in
    size by at most one row and follow each other in rank order."""
    part = rank() if part is None else part
    parts = world_size() if parts is None else parts
    return n * part // parts, n * (part + 1) // parts


def shard(indices):
    """This rank's contiguous block of ``indices`` (a list, array or tensor); all of
    them in one process."""
    start, stop = block(len(indices))
    return indices[start:stop]


def all_reduce_sum(tensor):
    """The sum over ranks of ``tensor`` (a new tensor; ``tensor`` itself is untouched)."""
    if not active():
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, group=_group(tensor))
    return total


def all_reduce_max(values):
    """The largest of each number over ranks: ``values`` a list of floats; returns a
    list of floats (travels over the control group, never waiting for a GPU)."""
    if not active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_group())
    return tensor.tolist()


def all_gather_rows(tensor):
    """Every rank's rows of ``tensor`` ``(n_r, ...)`` concatenated in rank order
    ``(sum n_r, ...)``; blocks may differ in length."""
    if not active():
        return tensor
    sizes = all_gather_objects(len(tensor))
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[:len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=_group(tensor))
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def all_gather_objects(obj):
    """Every rank's picklable ``obj``, as a list in rank order."""
    if not active():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj, group=_group())
    return gathered


def broadcast(obj):
    """Rank 0's picklable ``obj`` on every rank (rank 0 keeps its own object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]


def on_writer(function):
    """Call ``function()`` on rank 0 only and give its result to every rank; an
    exception it raises is raised on every rank (the same exception, pickled).
    In one process: ``function()``."""
    if not active():
        return function()
    result = error = None
    if is_writer():
        try:
            result = function()
        except Exception as exc:  # noqa: BLE001 - every rank raises it below
            error = exc
    if world_size() > 1:
        shared = broadcast((result, picklable(error)) if is_writer() else None)
        if not is_writer():
            result, error = shared
    if error is not None:
        raise error
    return result


def picklable(error):
    """``error``, or a RuntimeError with its type and message where it cannot be pickled
    (to send it to another process)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure to travel
        return RuntimeError(f'{type(error).__name__}: {error}')
    return error


def check_split(batch_size, rows, world, per_rank_batch=False):
    """Refuse (:class:`~pydnn2.errors.ConfigError`) a batch that cannot be shared by
    ``world`` processes: ``batch_size`` not a multiple of ``world`` (unless
    ``per_rank_batch``), or a global batch larger than the training set's ``rows``
    (None when unknown, as for a stream)."""
    if not per_rank_batch and batch_size % world:
        raise ConfigError(f'batch_size {batch_size} does not split evenly over {world} '
                          f'processes: the global batch is batch_size, {batch_size // world}'
                          f' or more rows per process; use a multiple of {world}, or '
                          'per_rank_batch=True for batch_size rows on every process')
    batch = batch_size * (world if per_rank_batch else 1)
    if rows is not None and rows < batch:
        raise ConfigError(f'the global batch of {batch} rows ({world} processes) is larger '
                          f'than the training set ({rows} rows); use a smaller batch_size')


def check_same_data(fingerprints, rows):
    """Refuse (:class:`~pydnn2.errors.DataError`, on every rank alike) ranks that hold
    different data: each trains its own block of batches drawn from sets every rank
    must hold whole. ``rows`` is ``{set: rows or None}`` and ``fingerprints`` the
    resume fingerprint (``{set: {'layout', 'rows', 'sha256'}}``, or None where the
    data cannot be hashed) of this rank; what one rank does not know is not compared.
    A collective: every rank calls it when the group starts."""
    if world_size() < 2:
        return
    said = all_gather_objects((rows, fingerprints))
    diffs = [diff for other, (r, f) in enumerate(said[1:], 1)
             for diff in _data_differences(other, said[0], (r, f))]
    if diffs:
        raise DataError('the ranks hold different data: ' + '; '.join(diffs) + '. Every '
                        'rank must hold the same sets (each trains its own block of every '
                        'batch); for data each rank reads a part of, use a stream that '
                        "shards itself (shards='dataset')")


def _data_differences(other, first, here):
    """How rank ``other``'s ``(rows, fingerprints)`` differs from rank 0's ``first``."""
    diffs = []
    for name, count in here[0].items():
        mine = first[0].get(name)
        if mine is not None and count is not None and mine != count:
            diffs.append(f"rank {other}'s {name} set has {count} rows, rank 0's {mine}")
            continue
        a, b = ((f or {}).get(name) for f in (first[1], here[1]))
        if a is None or b is None or a == b:
            continue
        if a['layout'] != b['layout'] or a['rows'] != b['rows']:
            diffs.append(f"rank {other}'s {name} set is {b['rows']} rows {b['layout']}, "
                         f"rank 0's {a['rows']} rows {a['layout']}")
        else:
            diffs.append(f"rank {other}'s {name} set has rank 0's shape, but the sampled rows "
                         f"differ (SHA-256 {b['sha256'][:12]}... there, {a['sha256'][:12]}... "
                         'on rank 0)')
    return diffs


def broadcast_buffers(module):
    """Give every rank rank 0's buffers of ``module`` (batch norm's running statistics),
    in place: the buffers rank 0 writes into checkpoints and nets, and the ones
    ``DistributedDataParallel`` broadcasts before each training step. A collective."""
    if not active():
        return
    for buffer in module.buffers():
        data = buffer.data if buffer.data.is_contiguous() else buffer.data.contiguous()
        dist.broadcast(data, src=0, group=_group(buffer))
        if data is not buffer.data:             # (collectives need contiguous tensors)
            buffer.data.copy_(data)


def barrier():
    """Wait until every rank is here (nothing in one process)."""
    if active():
        dist.barrier(group=_group())
