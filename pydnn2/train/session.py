"""One training run's working state, which checkpoints itself.

A :class:`Session` holds what a call of ``train`` works with (the net, its
learning rule and optimizer, the checked :class:`~pydnn2.train.config.TrainConfig`,
the callbacks and metrics) and what changes as it runs (the epoch count,
the history, the keepers of the best weights, every random generator).
``state_dict()`` gathers all that changes, and ``load_state_dict()`` puts it
back, so a checkpoint resumes the run exactly.
"""

import contextlib
import dataclasses
import functools
import os

import torch

from .. import distributed, progress, rng as rngs
from ..evaluate import as_metrics
from ..files import EXTENSION, BackgroundWriter, plain_tree
from ..model import layout
from ..model.modules import module_lock
from ..preprocess.sources import Shard
from . import parallel as par
from .best import Keepers
from .callbacks import CallbackList, EpochTable
from .history import History

HISTORY_KEYS = ('epoch', 'phase', 'train_loss', 'train_error', 'valid_loss', 'valid_error',
                'test_loss', 'test_error', 'learning_rate', 'seconds')


@dataclasses.dataclass
class EpochState:
    """Where an unfinished epoch stands: enough to rebuild it and continue."""

    phase: str                  # 'main' or 'final'
    preprocessor: dict          # the preprocessor's state before it made the epoch's set
    shuffle: torch.Tensor       # the shuffle generator's state before the epoch's order
    step: int = 0               # batches done
    losses: torch.Tensor = None  # their losses
    errors: int = 0             # their misclassified rows
    rows: int = None            # their rows, over all ranks (None: whole batches)

    def as_dict(self):
        """Plain data for a checkpoint."""
        return {k: (v.cpu() if isinstance(v, torch.Tensor) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class EpochResult:
    """What one epoch gave: its row of the epoch table when it finished, or
    where it stands when a stop request ended it early."""

    row: dict = None               # the finished epoch's row
    unfinished: EpochState = None  # the state of an epoch stopped part-way

    @property
    def finished(self):
        """Whether the epoch ran all its batches."""
        return self.row is not None


def penalised_weights(module):
    """The weight matrices and filters (what l1/l2 penalise): not biases, batch
    norm or PReLU slopes."""
    return [p for name, p in module.named_parameters()
            if p.requires_grad and name.endswith('weight') and p.dim() > 1]


class Session:
    """What one call of ``train`` works with, and its checkpointable state.

    Parameters
    ----------
    net : pydnn2.NN
    rule : pydnn2.train.rules.LearningRule
    config : pydnn2.train.config.TrainConfig
    run : pydnn2.train.runs.Run, optional
        The run's identity, which every file it writes carries.
    parallel : bool
        Train data-parallel over the ranks of the process group
        (:mod:`pydnn2.train.parallel`); only rank 0 prints.
    """

    def __init__(self, net, rule, config, run=None, parallel=False):
        self.net, self.rule, self.config, self.run = net, rule, config, run
        self._split(net, config, parallel)
        writer = not parallel or distributed.is_writer()
        self.verbose = writer and (net.verbose if config.verbose is None else config.verbose)
        self.progress = self.verbose if config.progress is None else writer and config.progress
        self._accelerate(net, config.speed)
        self.writer = BackgroundWriter()
        self.keepers = Keepers()
        # the best net: by validation loss, or by training loss when there is no validation set
        self.has_valid = net.preprocessor.num_rows('valid') != 0     # (None: a stream)
        self.best = self.keepers.get('valid_loss' if self.has_valid else 'train_loss')
        rule.annealer.attach(self.keepers)
        table = [EpochTable(self.log)] if self.verbose else []
        self.callbacks = CallbackList(table + list(config.callbacks or []), self)
        self.metrics = as_metrics(config.eval_metric) if config.eval_metric is not None else []
        self.penalised = penalised_weights(net.module)
        self.penalised_loss = bool(config.l1_reg or config.l2_reg)
        # one parameter group: every parameter follows the same rule (l1/l2 are in the loss)
        self.optimizer = rule.make_optimizer(
            [p for p in net.module.parameters() if p.requires_grad])
        self.shuffle = torch.Generator().manual_seed(rngs.seed_from(net.rng))
        # dropout masks follow the net's rng; train() runs inside rngs.forked, so the
        # caller's global torch generators come back as they were
        with module_lock(net.module):     # (net_size in another thread forks them too)
            rngs.seed_torch((rngs.seed_from(net.rng) + self.rank) % rngs.SEED_LIMIT,
                            net.device)          # (each rank its own dropout masks)
        self.history = History({key: [] for key in HISTORY_KEYS})
        self.history.update({f'valid_{m.name}': [] for m in self.metrics})
        self.epoch, self.main_done, self.stop_requested = 0, False, False
        self.stop_signal = None          # 'SIGINT' or 'SIGTERM' once one asked to stop
        folder = net.output_dir or '.'
        self.best_file = os.path.join(folder, f'{net.name}_best_net{EXTENSION}')
        self.final_file = os.path.join(folder, f'{net.name}_final_net{EXTENSION}')

    def _split(self, net, config, parallel):
        """The ranks, and the rows of each global batch this rank trains on."""
        self.parallel, self.rank_rngs = parallel, None
        self.shard = par.current_shard() if parallel else Shard()
        self.rank, world = self.shard.rank, self.shard.world
        self.global_batch = net.batch_size * (world if config.per_rank_batch else 1)
        self.rank_batch = self.global_batch // world

    def _accelerate(self, net, speed):
        device = torch.device(net.device)
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        # channels_last None: the faster layout, measured once per net (model.layout)
        recorded = layout.recorded_in(self.run.state if self.run else None)
        channels_last = layout.resolve(net, speed.channels_last, speed.amp, recorded, self.log,
                                       distributed.on_writer if self.parallel else None)
        self.speed = dataclasses.replace(speed, channels_last=channels_last)
        self.unsync = (par.sync_batch_norm(net.module, device)
                       if self.parallel and self.config.sync_batch_norm else None)
        model = par.wrap(net.module, device) if self.parallel else net.module
        self.model = torch.compile(model) if speed.compile else model
        dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(speed.amp)
        self.autocast = (functools.partial(torch.autocast, device.type, dtype) if dtype
                         else contextlib.nullcontext)
        self.scaler = torch.amp.GradScaler(device.type) if speed.amp == 'fp16' else None

    def close(self):
        """Let go of the data-parallel wrapper (and its gradient hooks); put back the
        batch-norm layers ``sync_batch_norm`` replaced."""
        self.model = None
        if self.unsync is not None:
            self.unsync()
            self.unsync = None

    def penalty(self):
        """l1 * sum|W| + l2 * sum W^2 over the weights (see :func:`penalised_weights`)."""
        total, l1, l2 = 0.0, self.config.l1_reg, self.config.l2_reg
        if l1:
            total = total + l1 * sum(w.abs().sum() for w in self.penalised)
        if l2:
            total = total + l2 * sum(w.pow(2).sum() for w in self.penalised)
        return total

    def log(self, message):
        """Print ``message`` beside the progress bars, when verbose."""
        if self.verbose:
            progress.write(message)

    def record(self, row):
        """Append a finished epoch's row to the history."""
        for key, values in self.history.items():
            values.append(row.get(key))

    # -- checkpointing -------------------------------------------------------------------

    def rng_state(self):
        """Every random generator training draws from, as plain data."""
        net = self.net
        state = {**rngs.torch_states(), 'shuffle': self.shuffle.get_state(),
                 'net_rng': rngs.numpy_state(net.rng),
                 'preprocessor': plain_tree(net.preprocessor.get_state())}
        if self.rank_rngs is not None:           # every rank's, gathered for a checkpoint
            state['ranks'] = self.rank_rngs
        return state

    def set_rng_state(self, state):
        """Restore :meth:`rng_state` (each rank its own torch generators)."""
        with module_lock(self.net.module):
            par.restore_torch_states(state, self.rank, self.net.device)
        self.shuffle.set_state(state['shuffle'])
        rngs.set_numpy_state(self.net.rng, state['net_rng'])
        self.net.preprocessor.set_state(state['preprocessor'])

    def state_dict(self):
        """Everything of the run that changes, as plain data and tensors."""
        return {'epoch': self.epoch, 'main_done': self.main_done,
                'history': {k: list(v) for k, v in self.history.items()},
                'keepers': self.keepers.state_dict(),
                'rule': {'class': type(self.rule).__name__, 'state': self.rule.state_dict()},
                'optimizer': self.optimizer.state_dict(), 'rng': self.rng_state(),
                'callbacks': self.callbacks.state_dict()}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` into a session built for the same net and rule."""
        self.rule.load_state_dict(state['rule']['state'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.set_rng_state(state['rng'])
        self.keepers.load_state_dict(state['keepers'])
        self.callbacks.load_state_dict(state['callbacks'])
        self.epoch, self.main_done = state['epoch'], state['main_done']
        self.history.clear()
        self.history.update(state['history'])
