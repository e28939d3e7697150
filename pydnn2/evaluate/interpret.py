"""Error analysis of a trained net on a labelled set: plain data first.

:func:`interpret` runs a net over a set ('train', 'valid', 'test' or an
``(x, classes)`` pair) once and returns an :class:`Interpretation`: numpy
arrays, lists and named tuples that answer pydnn's questions about a
classifier's mistakes:

- how many rows of each class there are, how often each class is predicted,
  each class's precision and recall (:func:`class_statistics`);
- each class's share of the data against its share of the errors, and the
  ratio of the two (pydnn's "times its fair share" of the error);
- which pairs of classes are confused most (:func:`confused_pairs`);
- which rows cost the most loss (:func:`top_losses`).

Its repr is a summary with the worst classes (HTML tables in a notebook);
:meth:`Interpretation.report` is pydnn's ``analyze_confusion_matrix`` as
text; :mod:`pydnn2.evaluate.plots` draws pictures from it.

>>> import numpy as np
>>> stats = class_statistics(np.array([[8, 2], [0, 10]]))
>>> stats['recall'].tolist(), stats['precision'].tolist()
([0.8, 1.0], [1.0, 0.8333333333333334])
>>> stats['fair_share_ratio'].tolist()      # class 0: half the data, all the errors
[2.0, 0.0]
"""

from __future__ import annotations

import dataclasses
import html
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Sequence

import numpy as np

from .. import checks
from ..errors import ConfigError, DataError
from ..table import Table
from .confusion import confusion_matrix
from .inference import gathered_arrays, labelled_source, raw_and_files, sharing, source_losses

if TYPE_CHECKING:                       # for the annotations only (the net imports this)
    from ..net import NN

_CLASS_TABLE = Table(('class', 'rows', 'wrong', 'recall', 'precision', 'share of data',
                      'share of errors', 'x fair share', 'most confused with'),
                     right=(1, 2, 3, 4, 5, 6, 7))
_PAIR_TABLE = Table(('actual', 'predicted as', 'rows'), right=(2,))
_LOSS_TABLE = Table(('row', 'file', 'actual', 'predicted', 'p(predicted)', 'p(actual)', 'loss'),
                    right=(0, 1, 4, 5, 6))


class ConfusedPair(NamedTuple):
    """Rows of class ``actual`` predicted as another class, ``predicted``."""

    actual: int
    predicted: int
    # shadows tuple.count, but the field is public API (ConfusedPair.count)
    count: int  # type: ignore[assignment]


class TopLoss(NamedTuple):
    """One row of a set and what it cost (``loss = -log p_actual``)."""

    row: int                # index of the row in the set
    file: Optional[int]     # its file index (preprocessor.get_files()); None if unknown
    actual: int
    predicted: int
    p_predicted: float      # probability of the predicted class
    p_actual: float         # probability of the actual class
    loss: float             # cross-entropy of the row


def _ratio(numerator, denominator):
    """``numerator / denominator``, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def class_statistics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class counts, precision, recall and share of the error of a confusion matrix.

    Parameters
    ----------
    confusion : array_like (K, K)
        Counts: rows are actual classes, columns predicted ones.

    Returns
    -------
    dict of ndarray (K,)
        ``support`` (rows of each class), ``predicted_counts``, ``errors``
        (wrong rows of each class), ``precision`` and ``recall`` (NaN where
        a class is never predicted / never present), ``data_share`` (the
        class's share of the rows: its fair share of the error),
        ``error_share`` (its share of all wrong rows; 0 when nothing is
        wrong) and ``fair_share_ratio`` (``error_share / data_share``: 2.0
        means the class makes twice its fair share of the errors).

    >>> class_statistics([[3, 1], [0, 4]])['errors'].tolist()
    [1, 0]
    """
    matrix = np.asarray(confusion, np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise DataError(f'class_statistics: expected a square confusion matrix (K, K), '
                        f'received shape {matrix.shape}')
    support, predicted, right = matrix.sum(1), matrix.sum(0), np.diag(matrix)
    errors = support - right
    total_errors = errors.sum()
    data_share = _ratio(support, support.sum())
    error_share = errors / total_errors if total_errors else np.zeros(len(matrix))
    return {'support': support, 'predicted_counts': predicted, 'errors': errors,
            'precision': _ratio(right, predicted), 'recall': _ratio(right, support),
            'data_share': data_share, 'error_share': error_share,
            'fair_share_ratio': _ratio(error_share, data_share)}


def confused_pairs(confusion: np.ndarray, top: int | None = None) -> list[ConfusedPair]:
    """The off-diagonal cells of a confusion matrix that are not 0, most rows first.

    Ties are broken by actual class, then predicted class. Returns a list
    of :class:`ConfusedPair`, at most ``top`` of them.

    >>> confused_pairs([[5, 2, 0], [3, 4, 0], [0, 2, 9]])
    [ConfusedPair(actual=1, predicted=0, count=3),
     ConfusedPair(actual=0, predicted=1, count=2),
     ConfusedPair(actual=2, predicted=1, count=2)]
    """
    matrix = np.array(confusion, np.int64)
    np.fill_diagonal(matrix, 0)
    actual, predicted = np.nonzero(matrix)          # row-major: ties stay in class order
    counts = matrix[actual, predicted]
    order = np.argsort(-counts, kind='stable')[:top]
    return [ConfusedPair(int(actual[i]), int(predicted[i]), int(counts[i])) for i in order]


def top_losses(actual: np.ndarray, probabilities: np.ndarray, losses: np.ndarray,
               files: np.ndarray | None = None, top: int | None = None) -> list[TopLoss]:
    """The rows with the highest loss, highest first (ties in row order).

    ``actual`` (N,) are the true classes, ``probabilities`` (N, K) the
    predicted ones (the predicted class is their argmax), ``losses`` (N,)
    each row's loss, ``files`` (N,) their file indices if known; at most
    ``top`` rows are returned, as a list of :class:`TopLoss`.
    """
    actual, losses = np.asarray(actual), np.asarray(losses)
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(1)
    rows = np.argsort(-losses, kind='stable')[:top]
    return [TopLoss(int(r), None if files is None else int(files[r]), int(actual[r]),
                    int(predicted[r]), float(probabilities[r, predicted[r]]),
                    float(probabilities[r, actual[r]]), float(losses[r])) for r in rows]


def input_row(inputs: Any, row: int, channel: str = 'images') -> np.ndarray:
    """Row ``row`` of raw input as a numpy array.

    ``inputs`` is an array, a list of arrays (images of different sizes) or
    a dict of either, as preprocessors' ``get_raw_x()`` gives them; from a
    dict the row comes from ``channel`` (or, without it, from ``'images'``,
    else the first channel).

    >>> input_row({'images': [np.zeros((2, 3)), np.ones((4, 5))]}, 1).shape
    (4, 5)
    """
    if isinstance(inputs, dict):
        for name in (channel, 'images'):
            if name in inputs:
                inputs = inputs[name]
                break
        else:
            inputs = next(iter(inputs.values()))
    value = inputs[int(row)]
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _percent(value):
    return '-' if value is None or np.isnan(value) else f'{100 * value:.1f}%'


@dataclasses.dataclass(repr=False, eq=False)
class Interpretation:
    """What a net gets wrong on one labelled set, as plain data.

    Made by :func:`interpret` (or :meth:`from_predictions`). Classes are
    numbered ``0 .. K-1``; ``class_names`` names them. The per-class arrays
    are those of :func:`class_statistics`.

    Attributes
    ----------
    set_name : str
        'train', 'valid', 'test', or 'given' for an ``(x, classes)`` pair.
    class_names : list of str
    actual, predicted : ndarray (N,) of int64
    probabilities : ndarray (N, K) of float32
        The softmax output, as ``predict`` returns it.
    losses : ndarray (N,) of float64
        Each row's cross-entropy, ``-log p(actual)``.
    files : ndarray (N,) of int64, or None
        File indices of the rows (``preprocessor.get_files()``), for named sets.
    confusion : ndarray (K, K) of int64
        Rows actual, columns predicted.
    support, predicted_counts, errors : ndarray (K,) of int64
    precision, recall, data_share, error_share, fair_share_ratio : ndarray (K,)
    confused_pairs : list of ConfusedPair
        The most confused pairs, most rows first (at most ``top``).
    top_losses : list of TopLoss
        The rows with the highest loss, highest first (at most ``top``).
    inputs
        The raw input of the rows (not copied), for pictures of them.
    channel : str
        The channel that holds the images in a dict of raw input.

    Examples
    --------
    >>> interp = Interpretation.from_predictions([0, 1, 1], [[.9, .1], [.8, .2], [.3, .7]])
    >>> interp.num_errors, interp.recall.tolist()
    (1, [1.0, 0.5])
    >>> interp.top_losses[0].row, round(interp.top_losses[0].loss, 3)
    (1, 1.609)
    """

    set_name: str
    class_names: list
    actual: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    losses: np.ndarray
    files: Optional[np.ndarray]
    confusion: np.ndarray
    support: np.ndarray
    predicted_counts: np.ndarray
    errors: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    data_share: np.ndarray
    error_share: np.ndarray
    fair_share_ratio: np.ndarray
    confused_pairs: list
    top_losses: list
    inputs: object = None
    channel: str = 'images'

    @classmethod
    def from_predictions(cls, actual: Any, probabilities: Any, losses: Any = None,
                         class_names: Sequence[str] | None = None, files: Any = None,
                         inputs: Any = None, set_name: str = 'given', top: int = 20,
                         channel: str = 'images') -> Interpretation:
        """Interpret predictions made elsewhere.

        ``losses`` default to ``-log(probabilities[row, actual])`` (clipped
        at the smallest float32, so a probability of 0 costs about 87.3).
        The other arguments are the attributes of the same names; ``top``
        bounds :attr:`confused_pairs` and :attr:`top_losses`.
        """
        probabilities = np.asarray(probabilities, np.float32)
        actual = np.asarray(actual, np.int64)
        _check_predictions(actual, probabilities)
        rows = np.arange(len(actual))
        if losses is None:
            tiny = np.finfo(np.float32).tiny
            losses = -np.log(np.maximum(probabilities[rows, actual].astype(np.float64), tiny))
        losses = np.asarray(losses, np.float64)
        predicted = probabilities.argmax(1)
        k = probabilities.shape[1]
        matrix = confusion_matrix(actual, predicted, k)
        files = None if files is None else np.asarray(files, np.int64)
        top = checks.integer(top, 'top', 1, where='interpret')
        return cls(set_name, _names(class_names, k), actual, predicted, probabilities, losses,
                   files, matrix, **class_statistics(matrix),
                   confused_pairs=confused_pairs(matrix, top),
                   top_losses=top_losses(actual, probabilities, losses, files, top),
                   inputs=inputs, channel=channel)

    @property
    def num_rows(self) -> int:
        """Rows in the set."""
        return len(self.actual)

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.class_names)

    @property
    def num_errors(self) -> int:
        """Wrongly classified rows."""
        return int(self.errors.sum())

    @property
    def error_rate(self) -> float:
        """Share of rows classified wrongly."""
        return self.num_errors / self.num_rows

    @property
    def mean_loss(self) -> float:
        """Mean cross-entropy over the set (the loss training reports)."""
        return float(self.losses.mean())

    @property
    def wrong(self) -> np.ndarray:
        """Row indices of the wrongly classified rows, highest loss first."""
        rows = np.flatnonzero(self.actual != self.predicted)
        return rows[np.argsort(-self.losses[rows], kind='stable')]

    def most_confused_with(self, cls: int, n: int = 3) -> list[tuple[int, int]]:
        """The classes rows of class ``cls`` are most often taken for:
        ``[(predicted, count), ...]``, most rows first, counts above 0."""
        cls = checks.integer(cls, 'cls', 0, maximum=self.num_classes - 1,
                             where='most_confused_with')
        row = self.confusion[cls].copy()
        row[cls] = 0
        order = np.argsort(-row, kind='stable')[:n]
        return [(int(c), int(row[c])) for c in order if row[c] > 0]

    def worst_classes(self, by: str = 'errors', n: int | None = None) -> list[int]:
        """Class indices, worst first: by number of ``'errors'``, by ``'error_rate'``
        (1 - recall) or by ``'fair_share_ratio'``; classes without rows come last."""
        checks.one_of(by, 'by', ('errors', 'error_rate', 'fair_share_ratio'),
                      where='worst_classes')
        key = {'errors': self.errors.astype(np.float64), 'error_rate': 1 - self.recall,
               'fair_share_ratio': self.fair_share_ratio}[by]
        key = np.where(np.isnan(key), -np.inf, key)
        return [int(c) for c in np.argsort(-key, kind='stable')[:n]]

    def image(self, row: int) -> np.ndarray:
        """The raw input of ``row`` (for a dict, its :attr:`channel`) as an array."""
        if self.inputs is None:
            raise DataError('this Interpretation holds no inputs; make it with interpret() '
                            'or pass inputs= to from_predictions')
        return input_row(self.inputs, row, self.channel)

    def class_rows(self, classes: Sequence[int] | None = None) -> list[tuple[str, ...]]:
        """Rows of text cells for the class table (default: every class)."""
        classes = range(self.num_classes) if classes is None else classes
        return [(self.class_names[c], str(self.support[c]), str(self.errors[c]),
                 _percent(self.recall[c]), _percent(self.precision[c]),
                 _percent(self.data_share[c]), _percent(self.error_share[c]),
                 '-' if np.isnan(self.fair_share_ratio[c]) else f'{self.fair_share_ratio[c]:.2f}',
                 ', '.join(f'{self.class_names[p]} ({k})' for p, k in self.most_confused_with(c)))
                for c in classes]

    def _pair_rows(self, n):
        return [(self.class_names[p.actual], self.class_names[p.predicted], str(p.count))
                for p in self.confused_pairs[:n]]

    def _loss_rows(self, n):
        return [(str(t.row), '-' if t.file is None else str(t.file), self.class_names[t.actual],
                 self.class_names[t.predicted], f'{t.p_predicted:.3f}', f'{t.p_actual:.3f}',
                 f'{t.loss:.3f}') for t in self.top_losses[:n]]

    def summary(self) -> str:
        """One line: the set, its rows and classes, errors and mean loss."""
        return (f'{self.set_name} set: {self.num_rows} rows, {self.num_classes} classes, '
                f'{self.num_errors} wrong ({_percent(self.error_rate)} error), '
                f'mean loss {self.mean_loss:.4f}')

    def __repr__(self, n: int = 5) -> str:
        worst = [c for c in self.worst_classes('errors', n) if self.errors[c] > 0]
        text = [f'Interpretation of the {self.summary()}']
        if worst:
            text += ['worst classes (most errors first):', _CLASS_TABLE.render(
                self.class_rows(worst))]
        if self.confused_pairs:
            text.append('most confused: ' + ', '.join(
                f'{a} -> {p} ({k})' for a, p, k in self._pair_rows(n)))
        return '\n'.join(text)

    def _repr_html_(self, n: int = 10) -> str:
        worst = [c for c in self.worst_classes('errors', n) if self.errors[c] > 0]
        parts = [f'<p><b>Interpretation</b> of the {html.escape(self.summary())}</p>']
        if worst:
            parts += ['<p>worst classes (most errors first)</p>',
                      _CLASS_TABLE.html(self.class_rows(worst))]
        if self.confused_pairs:
            parts += ['<p>most confused pairs</p>', _PAIR_TABLE.html(self._pair_rows(n))]
        parts += ['<p>highest losses</p>', _LOSS_TABLE.html(self._loss_rows(n))]
        return ''.join(parts)

    def report(self, n: int = 10) -> str:
        """pydnn's ``analyze_confusion_matrix`` as text.

        The totals, the most common classes, then the ``n`` worst classes
        by number of errors and the ``n`` worst by error rate, each with
        its rows and wrong rows, its fair share of the error (its share of
        the data), its contribution to the error and what it is most often
        confused with.
        """
        names = self.class_names
        common = np.argsort(-self.support, kind='stable')[:n]
        lines = [self.summary(), 'most common classes: ' + ', '.join(
            f'{names[c]} ({self.support[c]})' for c in common)]
        for by, title in (('errors', 'number of errors'), ('error_rate', 'error rate')):
            lines.append(f'\n---------- worst classes by {title} ----------')
            for c in self.worst_classes(by, n):
                if self.errors[c]:
                    lines += self._class_report(c)
        return '\n'.join(lines)

    def _class_report(self, c):
        confused = ', '.join(f'{self.class_names[p]} ({k})' for p, k in
                             self.most_confused_with(c, 10))
        return [(f'\nclass {self.class_names[c]}: {self.support[c]} rows, {self.errors[c]} '
                 f'wrong ({_percent(1 - self.recall[c])})'),
                f'  fair share of error: {_percent(self.data_share[c])}',
                (f'  contribution to error: {_percent(self.error_share[c])} '
                 f'({self.fair_share_ratio[c]:.2f} times fair share)'),
                f'  most often confused with: {confused}']


def _names(class_names, k):
    if class_names is None:
        return [str(c) for c in range(k)]
    if isinstance(class_names, str) or not hasattr(class_names, '__len__'):
        raise ConfigError(f'interpret: expected class_names as a list of {k} names, received '
                          f'{type(class_names).__name__}')
    if len(class_names) != k:
        raise ConfigError(f'interpret: expected {k} class names (one per class), received '
                          f'{len(class_names)}')
    return [str(name) for name in class_names]


def _check_predictions(actual, probabilities):
    if probabilities.ndim != 2 or len(probabilities) != len(actual) or not len(actual):
        raise DataError(f'interpret: expected probabilities (N, K) for N >= 1 classes given, '
                        f'received {probabilities.shape} for {len(actual)} classes')
    if actual.ndim != 1 or actual.min() < 0 or actual.max() >= probabilities.shape[1]:
        raise DataError(f'interpret: expected classes 0 .. {probabilities.shape[1] - 1}, '
                        f'received values from {actual.min()} to {actual.max()}')


def interpret(net: NN, data: Any = 'valid', class_names: Sequence[str] | None = None,
              top: int = 20, batch_size: int | None = None,
              shard: bool = False) -> Interpretation:
    """What a trained net gets wrong on a labelled set.

    Parameters
    ----------
    net : NN
        A net ending in ``add_logistic``.
    data : str, (x, classes), torch.utils.data.Dataset or torch.utils.data.DataLoader
        'train', 'valid' or 'test' (the preprocessor's sets; 'train'
        without augmentation), a pair of raw input (as for ``predict``)
        and its true classes, or a torch ``Dataset`` or ``DataLoader`` of
        ``(x, y)`` items.
    class_names : sequence of str, optional
        One name per class (e.g. ``DirectoryLabeledImageSet.get_labels()``);
        default ``'0'``, ``'1'``, ...
    top : int
        How many confused pairs and top losses to keep.
    batch_size : int, optional
        Rows per inference batch (default: sized to the device).
    shard : bool
        Under torchrun, each process runs its block of the rows and the
        blocks are gathered (every process must call); see ``predict``.

    Returns
    -------
    Interpretation

    Examples
    --------
    >>> interp = interpret(net, 'valid')                     # doctest: +SKIP
    >>> interp                                               # doctest: +SKIP
    Interpretation of the valid set: 359 rows, 10 classes, 12 wrong (3.3% error), ...
    >>> print(interp.report())                               # doctest: +SKIP
    """
    net.check_complete()
    part = sharing(net, shard)
    source = labelled_source(net, data, 'interpret')
    y, probabilities, losses = gathered_arrays(part, *source_losses(net, source, part, batch_size))
    if len(y) == 0:
        raise DataError(f'interpret: expected a set with at least one row, received the '
                        f'{data!r} set with none')
    raw, files = raw_and_files(net, data)
    return Interpretation.from_predictions(
        y, probabilities, losses, _names(class_names, net.num_classes), files,
        raw, data if isinstance(data, str) else 'given', top, net.channel)
