"""pydnn2: a builder-API neural-network trainer on PyTorch, in the spirit of pydnn.

The folders follow the data: :mod:`pydnn2.data` reads it,
:mod:`pydnn2.preprocess` prepares it, :mod:`pydnn2.model` builds the
network, :mod:`pydnn2.train` trains it, :mod:`pydnn2.evaluate` uses it, and
:mod:`pydnn2.files` saves it. :class:`NN` (in :mod:`pydnn2.net`) is the front
users build with; pydnn's module names are the public faces.

>>> from pydnn2 import neuralnet as nn, preprocess, data
>>> import pydnn2
>>> pydnn2.NN is nn.NN
True
"""

from .version import __version__  # noqa: F401
from . import data, neuralnet, preprocess
from .neuralnet import *  # noqa: F403
from .neuralnet import __all__ as _names
from .preprocess import ArrayPreprocessor, Preprocessor, split_training_data
from .export import export, export_inputs
from .ensemble import Ensemble
from . import track, tune
from .launcher import launch
from .tracebacks import set_traceback_filtering

__all__ = list(_names) + ['ArrayPreprocessor', 'Preprocessor', 'split_training_data',
                          'data', 'preprocess', 'neuralnet', 'export', 'export_inputs',
                          'set_traceback_filtering', 'launch', 'Ensemble', 'track', 'tune']
