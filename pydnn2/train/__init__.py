"""Training a net: configuration, the loop, its session state, callbacks, checkpoints,
learning rules, annealers and optimizers.

- :mod:`.config`: :class:`TrainConfig` and :class:`Speed`, the options of ``train``;
- :mod:`.loop`: :func:`train`, which checks its arguments and runs a :class:`Trainer`;
- :mod:`.trainer`: :class:`Trainer`, the loop from a batch up to the two phases;
- :mod:`.strategy`: one process or torchrun's ranks (:class:`SingleProcess`,
  :class:`DataParallel`);
- :mod:`.precision`: autocast, its scaler, the memory layout and compile;
- :mod:`.stop`: :class:`StopRequest`, the one way to stop;
- :mod:`.session`: :class:`Session`, the run's changing state, which checkpoints hold;
- :mod:`.history`: :class:`History`, the dict of lists ``train`` returns;
- :mod:`.best`: :class:`BestNet`, the one keeper of the best weights;
- :mod:`.callbacks`: hooks into training (``EarlyStopping``, ``HistoryLogger``, ...);
- :mod:`.checkpoints`: writing and finding checkpoints, :class:`ModelCheckpoint`;
- :mod:`.runs`: run ids, the lock, the refusal to touch another run's files;
- :mod:`.compat`: what a resume compares before it changes anything;
- :mod:`.rules`, :mod:`.annealers`, :mod:`.optimizers`: pydnn's learning rules and
  learning-rate annealers, and the optimizers torch lacks;
- :mod:`.signals`: Ctrl-C and SIGTERM;
- :mod:`.live`: :class:`LiveCurves`, learning curves drawn during training;
- :mod:`.lr_find`: the learning-rate finder behind ``net.lr_find``.
"""

from .annealers import (ConstantLearningRate, LearningRateAdjuster, LearningRateDecay,
                        LearningRateSchedule, WackyLearningRateAnnealer)
from .best import BestNet, BestWeights, Keepers
from .callbacks import Callback, EarlyStopping, EpochTable, HistoryLogger, StopTraining, StopWhen
from .checkpoints import ModelCheckpoint
from .config import Speed, TrainConfig
from .history import History
from .live import LiveCurves
from .loop import train
from .lr_find import LRFindResult
from .rules import (AdaDelta, Adam, LearningRule, Momentum, StochasticGradientDescent,
                    set_learning_rate)
from .session import HISTORY_KEYS, EpochResult, EpochState, Session
from .stop import StopRequest
from .strategy import DataParallel, SingleProcess, Strategy
from .trainer import Trainer

__all__ = ['train', 'Trainer', 'Strategy', 'SingleProcess', 'DataParallel', 'StopRequest',
           'LiveCurves', 'LRFindResult', 'TrainConfig', 'Speed', 'Session', 'EpochResult',
           'EpochState',
           'HISTORY_KEYS', 'History', 'BestNet', 'BestWeights', 'Keepers', 'Callback',
           'EarlyStopping', 'ModelCheckpoint',
           'EpochTable', 'HistoryLogger', 'StopTraining', 'StopWhen', 'LearningRule',
           'StochasticGradientDescent', 'Momentum', 'Adam', 'AdaDelta', 'set_learning_rate',
           'LearningRateAdjuster', 'ConstantLearningRate', 'LearningRateDecay',
           'LearningRateSchedule', 'WackyLearningRateAnnealer']
