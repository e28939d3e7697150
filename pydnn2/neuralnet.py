"""The pydnn-compatible facade: ``from pydnn2 import neuralnet as nn``.

Everything pydnn's ``neuralnet`` module offered, under the same names:
``NN``, the learning rules and annealers, the activation functions, and
``save``, ``load`` and ``net_size``; and pydnn2's additions (callbacks,
metrics, initialisers, errors).
"""

from .errors import (ConfigError, DataError, FileFormatError, FileWriteError,
                     MissingDependencyError, NetBuildError, Pydnn2Error, TrainingDivergedError,
                     TrainingInterrupted)
from .evaluate.metrics import (Accuracy, LogLoss, Misclassification, PrecisionRecall,
                               TopKMisclassification)
from .files import save
from .model.activations import prelu, relu, sigmoid, tanh
from .model.builder import Pathway
from .model.initializers import (Constant, Gaussian, GlorotUniform, Kaiming, LeCun, Orthogonal,
                                 Uniform)
from .model.recording import RerunWarning
from .model.size import SizeReport, net_size
from .net import NN, load, load_checkpoint
from .train.annealers import (ConstantLearningRate, LearningRateAdjuster, LearningRateDecay,
                              LearningRateSchedule, WackyLearningRateAnnealer)
from .train.callbacks import (Callback, EarlyStopping, EpochTable, HistoryLogger, StopTraining,
                              StopWhen)
from .train.config import Speed, TrainConfig
from .train.rules import AdaDelta, Adam, LearningRule, Momentum, StochasticGradientDescent

__all__ = ['NN', 'Pathway', 'RerunWarning', 'LearningRule', 'StochasticGradientDescent',
           'Momentum', 'Adam', 'AdaDelta', 'LearningRateAdjuster', 'ConstantLearningRate',
           'LearningRateDecay', 'LearningRateSchedule', 'WackyLearningRateAnnealer', 'relu',
           'prelu', 'tanh', 'sigmoid', 'save', 'load', 'net_size', 'SizeReport', 'Pydnn2Error',
           'NetBuildError', 'DataError', 'ConfigError', 'FileFormatError', 'FileWriteError',
           'TrainingDivergedError', 'MissingDependencyError', 'Accuracy', 'LogLoss',
           'Misclassification',
           'PrecisionRecall', 'TopKMisclassification', 'load_checkpoint', 'Callback',
           'EarlyStopping', 'EpochTable', 'HistoryLogger', 'StopTraining', 'StopWhen',
           'Constant', 'Gaussian', 'GlorotUniform', 'Kaiming', 'LeCun', 'Orthogonal', 'Uniform',
           'TrainConfig', 'Speed', 'TrainingInterrupted']
