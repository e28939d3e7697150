"""The pydnn-compatible facade: ``from pydnn2 import neuralnet as nn``.

Everything pydnn's ``neuralnet`` module offered, under the same names:
``NN``, the learning rules and annealers, the activation functions, and
``save``, ``load`` and ``net_size``.
"""

from .errors import (ConfigError, DataError, FileFormatError, NetBuildError, Pydnn2Error,
                     TrainingDivergedError)
from .callbacks import (Callback, EarlyStopping, EpochTable, HistoryLogger, StopTraining,
                        StopWhen)
from .checkpoint import load_checkpoint
from .initializers import Constant, Gaussian, GlorotUniform, Kaiming, Orthogonal, Uniform
from .io import load, save
from .layers import prelu, relu, sigmoid, tanh
from .learning import (AdaDelta, Adam, ConstantLearningRate, LearningRateAdjuster,
                       LearningRateDecay, LearningRateSchedule, LearningRule, Momentum,
                       StochasticGradientDescent, WackyLearningRateAnnealer)
from .builder import Pathway, RerunWarning
from .metrics import (Accuracy, LogLoss, Misclassification, PrecisionRecall,
                      TopKMisclassification)
from .net import NN
from .size import SizeReport, net_size

__all__ = ['NN', 'Pathway', 'RerunWarning', 'LearningRule', 'StochasticGradientDescent',
           'Momentum', 'Adam', 'AdaDelta', 'LearningRateAdjuster', 'ConstantLearningRate',
           'LearningRateDecay', 'LearningRateSchedule', 'WackyLearningRateAnnealer', 'relu',
           'prelu', 'tanh', 'sigmoid', 'save', 'load', 'net_size', 'SizeReport', 'Pydnn2Error',
           'NetBuildError', 'DataError', 'ConfigError', 'FileFormatError',
           'TrainingDivergedError', 'Accuracy', 'LogLoss', 'Misclassification',
           'PrecisionRecall', 'TopKMisclassification', 'load_checkpoint', 'Callback',
           'EarlyStopping', 'EpochTable', 'HistoryLogger', 'StopTraining', 'StopWhen',
           'Constant', 'Gaussian', 'GlorotUniform', 'Kaiming', 'Orthogonal', 'Uniform']
