"""Preparing data for a net: splitting, the preprocessor protocol, array and image
preprocessors, resizers and on-device augmentation (pydnn's ``preprocess``).

A *preprocessor* owns the training, validation and test sets and hands the
net a dict of channels (``{'images': tensor, 'shapes': tensor}``) for each
of them, standardised with statistics of the training set alone.

- :mod:`.split`: :func:`split_training_data` and the checks of labels and values;
- :mod:`.base`: the :class:`Preprocessor` protocol and its registry;
- :mod:`.sources`: the batch sources the loop reads (the protocol between data and
  the loop), :mod:`.rows` the readers of arrays in memory and on disk;
- :mod:`.arrays`: :class:`ArrayPreprocessor`, for arrays in memory or memory-mapped;
- :mod:`.datasets`: :class:`DatasetPreprocessor`, for torch datasets and DataLoaders
  (read through :mod:`.loader`'s ``DataLoader`` source, :mod:`.iterable`'s for an
  ``IterableDataset``, :mod:`.userloaders` for a user's ``DataLoader``);
- :mod:`.images` and :mod:`.rotators`: :class:`ImagePreprocessor` and pydnn's
  :class:`Canonicalizer`, :class:`Rotator360`, :class:`Rotator360PlusGeometry`
  (:mod:`.imagesets` the sets they take; :mod:`.streaming` streamed image folders
  read in ``DataLoader`` workers);
- :mod:`.augment`: what changes between epochs (:class:`Augmentation`) and when;
- :mod:`.resize`, :mod:`.boxes`, :mod:`.pixels`, :mod:`.imageops`: resizers and
  the image operations under them.

Examples
--------
>>> from pydnn2 import data, preprocess
>>> sets = preprocess.split_training_data(data.load_digits(), 32, 80, 10, 10)
>>> pre = preprocess.ArrayPreprocessor(sets)
>>> pre.shape_for('images')
(1, 8, 8)
"""

from .arrays import ArrayPreprocessor
from .augment import Augmentation
from .base import Preprocessor, preprocessor_class
from .datasets import DatasetPreprocessor
from .boxes import label_components, largest_blob_box, threshold_box
from .images import ImagePreprocessor
from .pixels import as_image, check_size, dark_mask
from .resize import (ContiguousBoxPreserveAspectRatioResizer, ContiguousBoxStretchResizer,
                     PreserveAspectRatioResizer, Resizer, StochasticStretchResizer,
                     StretchResizer, ThresholdBoxPreserveAspectRatioResizer,
                     ThresholdBoxStretchResizer, resizer_from_state)
from .rotators import Canonicalizer, Rotator360, Rotator360PlusGeometry
from .split import SET_NAMES, as_labels, check_finite, num_rows, split_training_data, take_rows

__all__ = ['split_training_data', 'Preprocessor', 'ArrayPreprocessor', 'DatasetPreprocessor',
           'ImagePreprocessor',
           'Canonicalizer', 'Rotator360', 'Rotator360PlusGeometry', 'Augmentation', 'Resizer',
           'StretchResizer', 'PreserveAspectRatioResizer', 'ThresholdBoxStretchResizer',
           'ThresholdBoxPreserveAspectRatioResizer', 'ContiguousBoxStretchResizer',
           'ContiguousBoxPreserveAspectRatioResizer', 'StochasticStretchResizer',
           'resizer_from_state', 'preprocessor_class', 'SET_NAMES', 'as_labels',
           'check_finite', 'num_rows', 'take_rows', 'as_image', 'check_size', 'dark_mask',
           'threshold_box', 'label_components', 'largest_blob_box']
