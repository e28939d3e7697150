"""What a call of ``train`` is asked to do: :class:`TrainConfig` and :class:`Speed`.

``net.train(updater, epochs, final_epochs, l1_reg, l2_reg, **options)`` keeps
pydnn's positional arguments; every keyword option is a field of
:class:`TrainConfig` (the speed options of :class:`Speed` included), checked
once here, so the loop sees one checked object.

>>> config = TrainConfig.from_options(epochs=3, patience=2, amp='bf16')
>>> config.patience, config.speed.amp
(2, 'bf16')
"""

import dataclasses
import os

from .. import checks
from ..errors import ConfigError
from .callbacks import Callback


@dataclasses.dataclass
class Speed:
    """How training runs on the device (none of it changes what is learned much)."""

    amp: str = None               # None, 'bf16', 'fp16' (autocast) or 'auto' (measured)
    channels_last: bool = None    # NHWC feature maps; None: the faster layout, measured once
    compile: bool = False         # torch.compile the module for the training steps
    data_on_device: bool = None   # None: keep sets on the device when they fit

    def __post_init__(self):
        checks.one_of(self.amp, 'amp', (None, 'auto', 'bf16', 'fp16'))
        if self.channels_last is not None:
            self.channels_last = bool(self.channels_last)
        self.compile = bool(self.compile)


@dataclasses.dataclass
class TrainConfig:
    """Every option of ``train``, checked.

    See :func:`pydnn2.train.loop.train` for what each one does.
    """

    epochs: int = 200               # epochs of the main phase (resumed ones included)
    final_epochs: int = 0           # epochs on train + valid + test afterwards
    l1_reg: float = 0.0             # l1 penalty on weight matrices and filters
    l2_reg: float = 0.0             # l2 penalty on weight matrices and filters
    verbose: bool = None            # print the epoch table (None: the net's verbose)
    progress: bool = None           # a progress bar within long epochs (None: verbose)
    restore_best: bool = None       # best weights back after the main phase (None: unless
    #                                 final epochs follow, which go on from the last ones)
    checkpoint_every: int = None    # write a checkpoint every this many epochs
    keep_checkpoints: int = 3       # how many of the newest checkpoints to keep
    resume: object = None           # a checkpoint path, True for the newest, 'auto': the
    #                                 newest if there is one (else a fresh run)
    accept_data_change: bool = False  # resume although the data's fingerprint differs
    overwrite: bool = False         # delete another run's files of this name, then start
    patience: int = None            # stop after this many epochs without a better valid loss
    eval_metric: object = None      # metric(s) evaluated on the validation set each epoch
    callbacks: list = None          # pydnn2.train.callbacks.Callback instances (or one)
    plot: object = False            # live learning curves: True (in a notebook) or a file path
    per_rank_batch: bool = False    # under torchrun: batch_size rows per process (default:
    #                                 batch_size rows per global batch, split over processes)
    sync_batch_norm: bool = False   # under torchrun on CUDA: batch statistics over all ranks
    speed: Speed = dataclasses.field(default_factory=Speed)

    def __post_init__(self):
        self.epochs = checks.integer(self.epochs, 'epochs', 0)
        self.final_epochs = checks.integer(self.final_epochs, 'final_epochs', 0)
        self.l1_reg = checks.number(self.l1_reg, 'l1_reg', at_least=0)
        self.l2_reg = checks.number(self.l2_reg, 'l2_reg', at_least=0)
        self.checkpoint_every = checks.integer(self.checkpoint_every, 'checkpoint_every', 1,
                                               none=True)
        self.keep_checkpoints = checks.integer(self.keep_checkpoints, 'keep_checkpoints', 1)
        self.patience = checks.integer(self.patience, 'patience', 1, none=True)
        if isinstance(self.callbacks, Callback):        # one callback, not in a list
            self.callbacks = [self.callbacks]
        if self.callbacks is not None and not isinstance(self.callbacks, (list, tuple)):
            raise ConfigError('callbacks must be a pydnn2 Callback or a list of them; '
                              f'received {type(self.callbacks).__name__}')
        if not isinstance(self.plot, (bool, str, os.PathLike)):
            raise ConfigError(f'plot must be True, False or a file path for the learning '
                              f'curves; received {self.plot!r}')
        for flag in ('accept_data_change', 'overwrite', 'per_rank_batch', 'sync_batch_norm'):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f'{flag} must be True or False; received '
                                  f'{getattr(self, flag)!r}')
        resume = self.resume
        if resume not in (None, False, True) and not isinstance(resume, (str, os.PathLike)):
            raise ConfigError(f"resume must be None, True, 'auto' or a checkpoint path; "
                              f'received {resume!r}')

    @classmethod
    def from_options(cls, **options):
        """A config from ``train``'s keyword options (the speed ones included),
        refusing unknown names with the list of known ones."""
        speed_names = {f.name for f in dataclasses.fields(Speed)}
        known = {f.name for f in dataclasses.fields(cls)} - {'speed'}
        unknown = sorted(set(options) - known - speed_names)
        if unknown:
            raise ConfigError(f'train got unknown options {unknown}; known: '
                              f'{sorted(known | speed_names)}')
        speed = Speed(**{k: options.pop(k) for k in list(options) if k in speed_names})
        return cls(speed=speed, **options)
