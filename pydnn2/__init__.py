"""pydnn2: a builder-API neural-network trainer on PyTorch, in the spirit of pydnn.

>>> from pydnn2 import neuralnet as nn, preprocess, data
>>> import pydnn2
>>> pydnn2.NN is nn.NN
True
"""

__version__ = '0.1.0'

from . import data, preprocess  # noqa: E402,F401
from .neuralnet import *  # noqa: E402,F401,F403
from .neuralnet import __all__ as _names  # noqa: E402
from . import neuralnet  # noqa: E402,F401
from .preprocess import ArrayPreprocessor, Preprocessor, split_training_data  # noqa: E402,F401

__all__ = list(_names) + ['ArrayPreprocessor', 'Preprocessor', 'split_training_data',
                          'data', 'preprocess', 'neuralnet']
