"""One training run's changing state, which a checkpoint holds.

A :class:`Session` is what changes while a call of ``train`` runs: the epoch
count and whether the main phase is done, the history, the keeper of the
best weights (:class:`~pydnn2.train.best.BestNet`), the learning rule (its
annealer's state) and its optimizer, the
shuffle generator and the callbacks' collected state. ``state_dict()``
gathers it (the random generators are added by the
:class:`~pydnn2.train.trainer.Trainer`, which knows the ranks), and
``load_state_dict()`` puts it back, so a checkpoint resumes the run exactly.
What the run works with (the net, the options, the strategy and precision)
is the trainer's, never the session's.
"""

import dataclasses

import torch

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
    """What changes while one call of ``train`` runs, and is checkpointed.

    Parameters
    ----------
    rule : pydnn2.train.rules.LearningRule
        The learning rule (its annealer's state changes).
    optimizer : torch.optim.Optimizer
        The rule's optimizer over the net's parameters.
    seed : int
        The seed of the shuffle generator (the order of each epoch's rows).
    best : pydnn2.train.best.BestNet
        The one keeper of the best weights (by ``'valid_loss'``, or ``'train_loss'``
        when there is no validation set).
    metrics : list of str
        The metrics recorded each epoch (``valid_<name>`` columns).
    callbacks : pydnn2.train.callbacks.CallbackList, optional
        The callbacks, whose collected state is checkpointed too.
    """

    def __init__(self, rule, optimizer, seed, best, metrics=(), callbacks=None):
        self.rule, self.optimizer, self.callbacks = rule, optimizer, callbacks
        self.shuffle = torch.Generator().manual_seed(seed)
        self.best = best
        self.history = History({key: [] for key in HISTORY_KEYS})
        self.history.update({f'valid_{name}': [] for name in metrics})
        self.epoch, self.main_done = 0, False

    def record(self, row):
        """Append a finished epoch's row to the history."""
        for key, values in self.history.items():
            values.append(row.get(key))

    def state_dict(self):
        """Everything of the run that changes but the random generators, as plain data
        and tensors."""
        return {'epoch': self.epoch, 'main_done': self.main_done,
                'history': {k: list(v) for k, v in self.history.items()},
                'keepers': self.best.state_dict(),
                'rule': {'class': type(self.rule).__name__, 'state': self.rule.state_dict()},
                'optimizer': self.optimizer.state_dict(),
                'callbacks': self.callbacks.state_dict() if self.callbacks else []}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` into a session built for the same net and rule."""
        self.rule.load_state_dict(state['rule']['state'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.best.load_state_dict(state['keepers'])
        if self.callbacks:
            self.callbacks.load_state_dict(state['callbacks'])
        self.epoch, self.main_done = state['epoch'], state['main_done']
        self.history.clear()
        self.history.update(state['history'])
