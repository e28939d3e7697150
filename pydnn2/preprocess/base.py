"""The preprocessor protocol between data and a net, and the registry of preprocessors.

A preprocessor owns the training, validation and test sets and serves each
as a dict of channels (``{'images': tensor, 'shapes': tensor}``) and the
classes. Every subclass is registered by class name, so that a saved net
rebuilds its preprocessor without a file ever naming code to import.
"""

import torch

from ..errors import DataError

_REGISTRY = {}


def preprocessor_class(name):
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


class Preprocessor:
    """The protocol between data and a net (pydnn's preprocessor protocol).

    A preprocessor serves three sets (train, valid, test) as
    ``(x, y)`` pairs, where ``x`` is a dict ``{channel: tensor (N, ...)}`` of
    float32 tensors and ``y`` an int64 tensor of classes. Subclasses
    implement the ``get_*`` methods, :meth:`preprocess`, :meth:`set_data`,
    :meth:`state_dict` and :meth:`from_state`; they are registered by class
    name so that saved nets can rebuild them.

    Attributes
    ----------
    device : torch.device
        Where the returned tensors live; the net sets it with :meth:`to`.
    """

    device = torch.device('cpu')

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    @property
    def channels(self):
        """The names of the channels this preprocessor serves."""
        return tuple(self._shapes)

    def shape_for(self, channel):
        """Return the shape of one row of ``channel`` (without the batch axis)."""
        try:
            return tuple(self._shapes[channel])
        except KeyError:
            raise DataError(
                f'unknown channel {channel!r}; this {type(self).__name__} provides '
                f'{list(self._shapes)}') from None

    def to(self, device):
        """Serve tensors on ``device`` from now on; returns ``self``."""
        self.device = torch.device(device)
        return self

    def get_train(self):
        """Return this epoch's training set ``(x, y)`` (possibly augmented)."""
        raise NotImplementedError(f'{type(self).__name__}.get_train')

    def get_all_train(self):
        """Return train + valid + test as one training set, for final epochs."""
        raise NotImplementedError(f'{type(self).__name__}.get_all_train')

    def get_valid(self):
        """Return the validation set ``(x, y)``."""
        raise NotImplementedError(f'{type(self).__name__}.get_valid')

    def get_test(self):
        """Return the test set ``(x, y)``; ``x`` may hold zero rows."""
        raise NotImplementedError(f'{type(self).__name__}.get_test')

    def get_raw_x(self):
        """Return the raw (unprocessed) inputs of ``[train, valid, test]``."""
        raise NotImplementedError(f'{type(self).__name__}.get_raw_x')

    def get_raw_y(self):
        """Return the classes of ``[train, valid, test]`` as int64 arrays.

        The default reads ``self._sets``, a list of ``(x, y, files)``
        triples, as the built-in preprocessors keep their sets.
        """
        self._require_data('get_raw_y')
        return [y for _, y, _ in self._sets]

    def get_files(self):
        """Return the file indices of ``[train, valid, test]`` (from ``self._sets``)."""
        self._require_data('get_files')
        return [files for _, _, files in self._sets]

    def prepare(self, data, what='data to predict'):
        """Unseen raw data checked and made into numpy arrays by channel, before any
        statistic is applied (what an exported net takes; see :mod:`pydnn2.export`)."""
        raise NotImplementedError(f'{type(self).__name__}.prepare')

    def preprocess(self, data):
        """Turn raw inputs into the channel dict a net predicts from."""
        raise NotImplementedError(f'{type(self).__name__}.preprocess')

    def set_data(self, data):
        """Attach new sets (as returned by :func:`~pydnn2.preprocess.split_training_data`)."""
        raise NotImplementedError(f'{type(self).__name__}.set_data')

    def state_dict(self):
        """Return the plain state needed to preprocess unseen data."""
        raise NotImplementedError(f'{type(self).__name__}.state_dict')

    @classmethod
    def from_state(cls, state):
        """Rebuild a preprocessor (without data) from :meth:`state_dict`."""
        raise NotImplementedError(f'{cls.__name__}.from_state')

    def get_state(self):
        """The mutable training-time state (random generators, augmentation
        schedule) as plain data, for checkpoints; none by default."""
        return {}

    def set_state(self, state):
        """Restore :meth:`get_state`'s state, so training resumes exactly."""

    def has_data(self):
        """Whether sets are attached (a loaded net's preprocessor has none)."""
        return getattr(self, '_sets', None) is not None

    def _require_data(self, what):
        if not self.has_data():
            raise DataError(
                f'{type(self).__name__}.{what} needs data, but none is attached '
                f'(a loaded net keeps only its preprocessing statistics); '
                f'call set_data(split_training_data(...)) first')
