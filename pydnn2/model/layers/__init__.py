"""The layer specs: one class per layer type (see :mod:`.base`).

- :mod:`.core`: pydnn's layers (inputs, conv-pool, dense, nonlinearities,
  dropout, batch norm, the logistic classifier, merges);
- :mod:`.maps`: neon's pooling, deconvolution, LRN, bias and skip;
- :mod:`.sequences`: lookup tables, recurrent layers and summaries.
"""

from .base import FLOAT, SPECS, TOKENS, Cost, Incoming, LayerSpec, spec_class
from .core import Activation, BatchNorm, ConvPool, Dense, Dropout, Input, Logistic, Merge
from .maps import LRN, Bias, Deconvolution, Pooling, Skip
from .sequences import (GRU, LSTM, LookupTable, Recurrent, RecurrentLast, RecurrentMean,
                        RecurrentSum)

__all__ = ['LayerSpec', 'Incoming', 'Cost', 'SPECS', 'spec_class', 'FLOAT', 'TOKENS',
           'Input', 'ConvPool', 'Dense', 'Logistic', 'Activation', 'Dropout', 'BatchNorm',
           'Merge', 'Pooling', 'Deconvolution', 'LRN', 'Bias', 'Skip', 'LookupTable',
           'Recurrent', 'LSTM', 'GRU', 'RecurrentSum', 'RecurrentMean', 'RecurrentLast']
