"""Deprecated: the callbacks moved to :mod:`pydnn2.train.callbacks` in pydnn2 0.2.

This module keeps code written against pydnn2 0.1 working for one more minor
version (it goes in 0.4): each of its names is the one in
:mod:`pydnn2.train.callbacks` (most are also in ``pydnn2`` itself), reached
with a :class:`DeprecationWarning` that names the new place.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter('always')
...     from pydnn2.callbacks import EarlyStopping
>>> from pydnn2.train.callbacks import EarlyStopping as moved
>>> EarlyStopping is moved, caught[0].category.__name__
(True, 'DeprecationWarning')
"""

import warnings

from .train import callbacks as _moved

# What pydnn2.callbacks exported in pydnn2 0.1, each served by __getattr__ below.
__all__ = ['StopTraining', 'is_rank_zero', 'Callback', 'overrides',  # noqa: F822
           'CallbackList', 'EpochTable', 'EarlyStopping', 'HistoryLogger', 'StopWhen']


def __getattr__(name):
    """``pydnn2.callbacks.X``: ``pydnn2.train.callbacks.X``, with a DeprecationWarning."""
    if name not in __all__:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    warnings.warn(f'pydnn2.callbacks is deprecated since pydnn2 0.2 and goes in 0.4: '
                  f'import {name} from pydnn2.train.callbacks instead', DeprecationWarning,
                  stacklevel=2)
    return getattr(_moved, name)
