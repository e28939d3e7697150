"""Ensemble: several trained nets predicting as one (pydnn's ``average_submissions``).

An :class:`Ensemble`'s probabilities are the weighted mean of its members'
(each member preprocesses the raw data its own way, with its own training
statistics). It predicts, evaluates, draws confusion matrices and
interprets its mistakes as a net does, and exports to one ONNX file whose
graph runs every member and averages them.

>>> from pydnn2 import neuralnet as nn, preprocess, data
>>> sets = preprocess.split_training_data(data.load_digits(), 64, 80, 10, 10)
>>> nets = []
>>> for seed in (0, 1):
...     net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 64, seed,
...                 verbose=False, device='cpu')
...     net.add_hidden(16)
...     net.add_logistic()
...     nets.append(net)
>>> ensemble = Ensemble(nets, weights=[3, 1])
>>> classes, probabilities = ensemble.predict(sets[2][0])
>>> expected = 0.75 * nets[0].predict(sets[2][0])[1] + 0.25 * nets[1].predict(sets[2][0])[1]
>>> bool(abs(probabilities - expected).max() < 1e-6)
True
"""

import os

import numpy as np
import torch

from . import checks
from .errors import ConfigError, DataError
from .evaluate import Interpretation, as_metrics, confusion_matrix
from .evaluate.inference import class_indices
from .export import ExportedNet, export_inputs, input_names, write_model
from .net import NN, load
from .preprocess import SET_NAMES, num_rows


def _member(member, index, device):
    """A net, or the net saved at a path; with its label for messages."""
    if isinstance(member, NN):
        return member, f'member {index} (net {member.name!r})'
    if isinstance(member, (str, os.PathLike)):
        return load(member, device), f'member {index} ({os.fspath(member)!r})'
    raise ConfigError(f'Ensemble: expected each member as a pydnn2 NN or the path of a saved '
                      f'net; received {type(member).__name__} as member {index}')


def _signature(net):
    """What members must agree on: classes, preprocessor kind, channels and their shapes."""
    names = input_names(net)
    return {'num_classes': net.num_classes,
            'preprocessor': type(net.preprocessor).__name__,
            'channels': sorted(names),
            'shapes': {c: tuple(net.preprocessor.shape_for(c)) for c in names}}


def _weights(weights, count):
    """The weights as float64 summing to 1 (equal without ``weights``)."""
    if weights is None:
        return np.full(count, 1.0 / count)
    values = list(weights) if not isinstance(weights, str) else None
    if values is None or len(values) != count or not all(
            checks.is_number(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ConfigError(f'Ensemble: expected weights as {count} numbers >= 0 (one per '
                          f'member) with a positive sum; received {weights!r}')
    values = np.asarray(values, np.float64)
    return values / values.sum()


class AveragedNets(torch.nn.Module):
    """The members' exported nets averaged: ``forward(*inputs)`` takes the inputs named
    :attr:`input_names` (as :meth:`Ensemble.export_inputs` makes them) and returns the
    weighted mean of the members' probabilities ``(N, num_classes)``."""

    def __init__(self, nets, weights):
        super().__init__()
        self.nets = torch.nn.ModuleList([ExportedNet(net) for net in nets])
        self.input_names = self.nets[0].input_names
        self.register_buffer('weights', torch.as_tensor(weights, dtype=torch.float32))
        self.eval()

    def forward(self, *inputs):
        by_name = dict(zip(self.input_names, inputs))
        total = 0
        for k, net in enumerate(self.nets):
            total = total + self.weights[k] * net(*[by_name[n] for n in net.input_names])
        return total                                              # (N, num_classes)


class Ensemble:
    """Nets that predict together: the weighted mean of their probabilities.

    Parameters
    ----------
    members : list of NN or path
        Trained nets, or files saved by ``net.save`` / written by ``train``
        (e.g. :meth:`pydnn2.tune.SearchResult.best_net_paths`). They must agree
        on ``num_classes``, on the kind of preprocessor, and on the channels
        they read and their shapes.
    weights : sequence of float, optional
        One weight >= 0 per member (normalised to sum to 1); default equal.
    device : str or torch.device, optional
        Where members loaded from files run (default: as :func:`pydnn2.load`).

    Raises
    ------
    pydnn2.errors.ConfigError
        Naming the member that disagrees with member 0, and on what.
    """

    def __init__(self, members, weights=None, device=None):
        if isinstance(members, (NN, str, os.PathLike)) or not hasattr(members, '__iter__'):
            raise ConfigError(f'Ensemble: expected a list of nets or paths; received '
                              f'{type(members).__name__}')
        members = list(members)
        if not members:
            raise ConfigError('Ensemble: expected a list of one or more nets or paths; '
                              'received an empty list')
        loaded = [_member(m, i, device) for i, m in enumerate(members)]
        self.members = [net for net, _ in loaded]
        self.labels = [label for _, label in loaded]
        first = _signature(self.members[0])
        for net, label in loaded[1:]:
            theirs = _signature(net)
            for key, value in first.items():
                if theirs[key] != value:
                    raise ConfigError(f'Ensemble: {label} disagrees with {self.labels[0]} on '
                                      f'{key}: {theirs[key]!r}, where member 0 has {value!r}')
        self.weights = _weights(weights, len(self.members))

    @property
    def num_classes(self):
        """The classes every member predicts."""
        return self.members[0].num_classes

    def __repr__(self):
        weights = ', '.join(f'{w:.3g}' for w in self.weights)
        return (f'Ensemble of {len(self.members)} nets ({self.num_classes} classes; weights '
                f'{weights}): ' + '; '.join(self.labels))

    def predict(self, data, batch_size=None):
        """``(classes, probabilities)`` for raw ``data``, as :meth:`NN.predict` gives them:
        the probabilities are the weighted mean of the members' (float32)."""
        probabilities = [net.predict(data, batch_size=batch_size)[1] for net in self.members]
        mean = np.average(np.stack(probabilities), axis=0, weights=self.weights)
        mean = mean.astype(np.float32)
        return mean.argmax(1), mean

    def get_outputs(self, data, batch_size=None):
        """The ensemble's probabilities for ``data``: raw input, or 'train', 'valid' or
        'test' (the sets of the first member holding data)."""
        if isinstance(data, str):
            data = self._named(data)[0]
        return self.predict(data, batch_size)[1]

    def _source(self):
        """The first member whose preprocessor holds data sets."""
        for net in self.members:
            pre = net.preprocessor
            if not hasattr(pre, 'has_data') or pre.has_data():
                return net
        raise DataError('Ensemble: no member holds data sets (nets loaded from files keep only '
                        'their statistics); pass an (x, classes) pair instead of a set name')

    def _named(self, name):
        """``(raw x, classes, file indices)`` of set ``name``."""
        if name not in SET_NAMES:
            raise ConfigError(f'Ensemble: expected a set name among {list(SET_NAMES)}, '
                              f'received {name!r}')
        pre, index = self._source().preprocessor, SET_NAMES.index(name)
        return pre.get_raw_x()[index], np.asarray(pre.get_raw_y()[index]), \
            pre.get_files()[index]

    def _labelled(self, data, what):
        """A set name or an ``(x, classes)`` pair as ``(raw x, classes, files, set name)``."""
        if isinstance(data, str):
            return (*self._named(data), data)
        if isinstance(data, (tuple, list)) and len(data) == 2:
            y = class_indices(self.members[0], data[1], what)
            if num_rows(data[0]) != len(y):
                raise DataError(f'{what}: expected one class per row of data '
                                f'({num_rows(data[0])} rows), received {len(y)} classes')
            return data[0], y, None, 'given'
        raise ConfigError(f'{what}: expected data as {" / ".join(map(repr, SET_NAMES))} or an '
                          f'(x, classes) pair, received {type(data).__name__}')

    def evaluate(self, data, metric, batch_size=None):
        """A metric (or a list of them) of the ensemble on 'train', 'valid', 'test' or an
        ``(x, classes)`` pair, as :meth:`NN.evaluate` (None for an empty set)."""
        metrics = as_metrics(metric)
        x, y, _, _ = self._labelled(data, 'Ensemble.evaluate')
        results = [None] * len(metrics)
        if len(y):
            probabilities = torch.from_numpy(self.predict(x, batch_size)[1])
            for m in metrics:
                m.reset()
                m.update(probabilities, torch.as_tensor(y))
            results = [m.result() for m in metrics]
        return results if isinstance(metric, (list, tuple)) else results[0]

    def get_confusion_matrices(self):
        """``[(matrix, mistakes)]`` for the training, validation and test sets, as
        :meth:`NN.get_confusion_matrices`: mistakes are ``(file_index, actual, predicted)``."""
        result = []
        for name in SET_NAMES:
            x, y, files, _ = self._labelled(name, 'Ensemble.get_confusion_matrices')
            if not len(y):
                result.append((np.zeros((self.num_classes,) * 2, np.int64), []))
                continue
            predicted = self.predict(x)[0]
            files = np.asarray(files)
            mistakes = [(files[i].item(), int(y[i]), int(predicted[i]))
                        for i in np.flatnonzero(predicted != y)]
            result.append((confusion_matrix(y, predicted, self.num_classes), mistakes))
        return result

    def interpret(self, data='valid', class_names=None, top=20, batch_size=None):
        """What the ensemble gets wrong on a labelled set, as
        :meth:`NN.interpret`: an :class:`~pydnn2.evaluate.Interpretation`."""
        x, y, files, name = self._labelled(data, 'Ensemble.interpret')
        if not len(y):
            raise DataError(f'Ensemble.interpret: expected a set with at least one row, '
                            f'received the {data!r} set with none')
        probabilities = self.predict(x, batch_size)[1]
        return Interpretation.from_predictions(y, probabilities, None, class_names, files, x,
                                               name, top, self.members[0].channel)

    def export_inputs(self, data):
        """The exported ensemble's inputs for raw ``data`` (see
        :func:`pydnn2.export_inputs`); a :class:`~pydnn2.errors.ConfigError` when
        members prepare the data differently (then one graph cannot take it)."""
        order = input_names(self.members[0])
        first = export_inputs(self.members[0], data)
        for net, label in zip(self.members[1:], self.labels[1:]):
            theirs = export_inputs(net, data)
            for name in order:
                if not np.array_equal(first[name], theirs[name]):
                    raise ConfigError(f'Ensemble.export_inputs: {label} prepares channel '
                                      f'{name!r} differently from {self.labels[0]} (resized '
                                      f'or oriented otherwise); export its members one by one')
        return first

    def export(self, path, format='onnx', *, opset_version=None):
        """Write the ensemble as one model (ONNX by default): every member's
        standardisation, net and softmax, and their weighted mean.

        The model takes :meth:`export_inputs` in order and returns the probabilities
        ``(N, num_classes)``, as :func:`pydnn2.export` does for one net. Returns ``path``.

        >>> ensemble.export('ensemble.onnx')                   # doctest: +SKIP
        'ensemble.onnx'
        """
        model = AveragedNets(self.members, self.weights)
        example = model.nets[0].example_inputs(self.members[0])
        return write_model(model, example, path, format, opset_version=opset_version)
