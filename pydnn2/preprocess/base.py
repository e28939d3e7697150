"""The preprocessor protocol between data and a net, and the registry of preprocessors.

A preprocessor owns the training, validation and test sets and serves each,
batch by batch, as a dict of channels (``{'images': tensor, 'shapes': tensor}``)
and the classes, through one batch source per set
(:mod:`pydnn2.preprocess.sources`). Every subclass is registered by class
name, so that a saved net rebuilds its preprocessor without a file ever naming code to import.
"""

from __future__ import annotations

import abc
import warnings
from typing import Any, Sequence, TypeVar

import numpy as np

import torch

from ..errors import DataError
from .sources import BatchSource, WholeSetSource
from .standardize import Standardizer

_REGISTRY: dict[str, type] = {}
_P = TypeVar('_P', bound='Preprocessor')


def preprocessor_class(name: str) -> type[Preprocessor]:
    """Return the registered :class:`Preprocessor` subclass called ``name``.

    Loading a saved net rebuilds its preprocessor through this registry, so
    only classes that are already imported can be named by a file: a file
    can never make pydnn2 import or run anything.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(
            f'unknown preprocessor class {name!r}; import the module that defines it '
            f'before loading. Known: {sorted(_REGISTRY)}') from None


def _renamed(old: str, new: str) -> None:
    warnings.warn(f'Preprocessor.{old} is now {new} (a preprocessor\'s state_dict holds its '
                  f'statistics, {new} its random generators); {old} goes in the next release',
                  DeprecationWarning, stacklevel=3)


def _adopt_old_names(cls: type) -> None:
    """A subclass written for the old protocol (its own ``get_state`` / ``set_state``,
    no ``random_state``) keeps working: its methods serve the new names, with a
    DeprecationWarning when the class is defined."""
    for old, new in (('get_state', 'random_state'), ('set_state', 'set_random_state')):
        if old in vars(cls) and new not in vars(cls):
            setattr(cls, new, vars(cls)[old])
            warnings.warn(f'{cls.__name__}.{old}: the preprocessor protocol names it {new} '
                          f'now; define {new} ({old} goes in the next release)',
                          DeprecationWarning, stacklevel=3)


class Preprocessor(abc.ABC):
    """The protocol between data and a net (pydnn's preprocessor protocol, made explicit).

    A preprocessor owns three sets (train, valid, test) and serves each as
    batches of channels: ``x`` a dict ``{channel: tensor (b, ...)}`` (float32
    values, or int64 tokens) and ``y`` the int64 classes. What each part of
    pydnn2 asks of it:

    - **building a net**: :attr:`channels`, :meth:`shape_for`, :meth:`dtype_for`,
      :meth:`max_token`, :meth:`has_data`;
    - **training**: :meth:`source` (a :class:`~pydnn2.preprocess.sources.BatchSource`
      per set: the loop iterates its batches), :meth:`num_rows`, :meth:`labels`,
      and :meth:`random_state` / :meth:`set_random_state` (the random state that
      makes an epoch's augmentation, for checkpoints);
    - **prediction**: :meth:`preprocess` (raw rows -> channels), :meth:`prepare` and
      :meth:`standardizer` (what an exported net takes, and the standardisation
      built into it);
    - **files**: :meth:`state_dict` / :meth:`from_state` (the statistics a saved
      net keeps; never the data), :meth:`set_data` (attach sets again);
    - pydnn's names, kept: :meth:`get_train`, :meth:`get_all_train`,
      :meth:`get_valid`, :meth:`get_test` (whole sets, made through the sources),
      :meth:`get_raw_x`, :meth:`get_raw_y`, :meth:`get_files`.

    Subclasses are registered by class name so that saved nets can rebuild
    them (:func:`preprocessor_class`).

    Attributes
    ----------
    device : torch.device
        Where :meth:`preprocess` returns its tensors; the net sets it with
        :meth:`to`. The sets themselves stay where they are: the loop decides
        where their batches go (:func:`~pydnn2.preprocess.sources.resident`).
    """

    device = torch.device('cpu')

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls
        _adopt_old_names(cls)

    # -- what a net asks when it is built ---------------------------------------------------

    @property
    def channels(self) -> tuple[str, ...]:
        """The names of the channels this preprocessor serves."""
        return tuple(self.shapes())

    def shape_for(self, channel: str) -> tuple[int, ...]:
        """The shape of one row of ``channel`` (without the batch axis)."""
        return tuple(self.shapes()[self._known(channel)])

    @abc.abstractmethod
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{channel: row shape}`` of every channel served."""

    def dtype_for(self, channel: str) -> str:
        """What ``channel`` serves: ``'float32'`` values (the default) or ``'int64'``
        tokens."""
        self._known(channel)
        return 'float32'

    def max_token(self, channel: str) -> int | None:
        """The largest token of a token channel in the attached sets; None for value
        channels and when unknown (the default)."""
        self._known(channel)
        return None

    @abc.abstractmethod
    def has_data(self) -> bool:
        """Whether sets are attached (a loaded net's preprocessor has none)."""

    def _known(self, channel: str) -> str:
        if channel not in self.channels:
            raise DataError(f'unknown channel {channel!r}; this {type(self).__name__} '
                            f'provides {list(self.channels)}')
        return channel

    # -- what training asks -----------------------------------------------------------------

    def source(self, name: str, augment: bool = True) -> BatchSource:
        """The :class:`~pydnn2.preprocess.sources.BatchSource` of set ``name``:
        ``'train'``, ``'valid'``, ``'test'`` or ``'all'`` (train + valid + test, for
        final epochs). ``augment`` (train and all only): serve each epoch's
        augmentation (False: the rows as for prediction).

        Subclasses implement it. A subclass written for pydnn2 0.2, which served
        whole sets from ``get_train`` / ``get_all_train`` / ``get_valid`` /
        ``get_test``, still works through an adapter (with a DeprecationWarning)."""
        method = {'train': 'get_train', 'all': 'get_all_train', 'valid': 'get_valid',
                  'test': 'get_test'}[name]
        if getattr(type(self), method) is getattr(Preprocessor, method):
            raise NotImplementedError(f'{type(self).__name__} must implement source(name)')
        warnings.warn(f'{type(self).__name__} serves whole sets through {method}(); implement '
                      'source(name) (see pydnn2.preprocess.sources) to serve batches. The '
                      'whole-set protocol goes in pydnn2 0.4', DeprecationWarning, stacklevel=2)
        whole = getattr(self, method)
        return WholeSetSource(whole, varies=name in ('train', 'all') and augment)

    def num_rows(self, name: str) -> int | None:
        """Rows in set ``name`` (None when unknown until read)."""
        self._require_data(f'num_rows({name!r})')
        return self.source(name).num_rows

    def labels(self, name: str) -> np.ndarray | None:
        """The classes of set ``name`` in order (None when unknown until read)."""
        self._require_data(f'labels({name!r})')
        return self.source(name).labels()

    def to(self: _P, device: str | torch.device) -> _P:
        """Return :meth:`preprocess`'s tensors on ``device`` from now on; returns ``self``."""
        self.device = torch.device(device)
        return self

    def random_state(self) -> Any:
        """The random state that makes each epoch's set (generators, augmentation
        schedule) as plain data, for checkpoints; none by default. (Statistics are
        :meth:`state_dict`'s.)"""
        return {}

    def set_random_state(self, state: Any) -> None:
        """Restore :meth:`random_state`'s state, so training resumes exactly."""
        return None                 # no state by default: nothing to restore

    def get_state(self) -> Any:
        """Deprecated name of :meth:`random_state` (kept for one release)."""
        _renamed('get_state', 'random_state')
        return self.random_state()

    def set_state(self, state: Any) -> None:
        """Deprecated name of :meth:`set_random_state` (kept for one release)."""
        _renamed('set_state', 'set_random_state')
        self.set_random_state(state)

    # -- what prediction and export ask -----------------------------------------------------

    @abc.abstractmethod
    def preprocess(self, data: Any) -> dict[str, torch.Tensor]:
        """Turn raw inputs into the channel dict a net predicts from (on :attr:`device`)."""

    def prepare(self, data: Any, what: str = 'data to predict') -> dict[str, np.ndarray]:
        """Unseen raw data checked and made into numpy arrays by channel, before any
        statistic is applied: what an exported net takes (see :mod:`pydnn2.export`)."""
        raise NotImplementedError(f'{type(self).__name__}.prepare')

    def export_dtype(self, channel: str) -> torch.dtype:
        """The dtype an exported net takes ``channel`` in: int64 for tokens, float32
        for values (a preprocessor serving raw bytes, as images, says so)."""
        return torch.int64 if self.dtype_for(channel) == 'int64' else torch.float32

    def standardizer(self) -> Standardizer | None:
        """A :class:`~pydnn2.preprocess.standardize.Standardizer` module taking
        :meth:`prepare`'s arrays as a dict of tensors and returning the channels the
        net sees: the standardisation an exported net carries. None when the
        preprocessor has none to export."""
        return None

    # -- files ------------------------------------------------------------------------------

    @abc.abstractmethod
    def set_data(self, data: Any) -> None:
        """Attach new sets (as returned by :func:`~pydnn2.preprocess.split_training_data`)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Return the plain state needed to preprocess unseen data."""

    @classmethod
    @abc.abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a preprocessor (without data) from :meth:`state_dict`."""

    # -- pydnn's names ----------------------------------------------------------------------

    def get_train(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """This epoch's training set ``(x, y)`` whole (augmented: moves the
        augmentation on by one epoch), in row order."""
        return self._whole('train')

    def get_all_train(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Train + valid + test as one training set (augmented), for final epochs."""
        return self._whole('all')

    def get_valid(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The validation set ``(x, y)``."""
        return self._whole('valid')

    def get_test(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The test set ``(x, y)``; ``x`` may hold zero rows."""
        return self._whole('test')

    def _whole(self, name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Set ``name`` whole; kept (per source) when every pass gives the same rows."""
        self._require_data(f'get_{name}')
        source = self.source(name)
        if source.varies:
            return source.whole(self.device)
        kept = self.__dict__.setdefault('_wholes', {})
        key = (id(source), self.device)
        if kept.get('source', {}).get(key) is not source:
            kept.clear()
            kept['source'] = {key: source}
        if key not in kept:
            kept[key] = source.whole(self.device)
        return kept[key]

    def get_raw_x(self) -> list[Any]:
        """The raw (unprocessed) inputs of ``[train, valid, test]``."""
        raise NotImplementedError(f'{type(self).__name__}.get_raw_x')

    def get_raw_y(self) -> Sequence[np.ndarray | None]:
        """The classes of ``[train, valid, test]`` as int64 arrays."""
        return [self.labels(name) for name in ('train', 'valid', 'test')]

    def get_files(self) -> list[Any]:
        """The file (or row) indices of ``[train, valid, test]``."""
        raise NotImplementedError(f'{type(self).__name__}.get_files')

    def _require_data(self, what: str) -> None:
        if not self.has_data():
            raise DataError(
                f'{type(self).__name__}.{what} needs data, but none is attached '
                f'(a loaded net keeps only its preprocessing statistics); '
                f'call set_data(split_training_data(...)) first')
