"""Evaluation metrics over predicted class probabilities (neon's metrics).

A metric is a small stateful object:

``reset()``
    forget everything seen so far;
``update(probabilities, labels)``
    add a batch: ``probabilities`` of shape ``(B, K)`` (a torch tensor or
    anything numpy accepts) and the true classes ``labels`` of shape ``(B,)``;
``result()``
    the value over every row added since the last reset: a float, or for
    :class:`PrecisionRecall` a dict; ``None`` when no row has been added;
``name``
    the key the value is reported under (``net.eval``, the training
    history);
``metric(probabilities, labels)``
    one-shot use: the value of this batch alone, leaving the metric's own
    running state untouched.

Updates are streaming: the running sums are exact counts (or float64
sums), so updating batch by batch gives the value of one update with all
the rows. Sums stay on the device of the first batch and are read only by
:meth:`Metric.result`, so evaluating on a GPU copies one number per metric.

Any object with ``name``, ``reset``, ``update`` and ``result`` can be used
where pydnn2 takes a metric.

Examples
--------
>>> import numpy as np
>>> p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
>>> y = np.array([0, 1, 1])
>>> Misclassification()(p, y), Accuracy()(p, y)
(0.6666666666666666, 0.3333333333333333)
>>> TopKMisclassification(2)(p, y)
0.0
>>> metric = LogLoss()
>>> metric.update(p[:2], y[:2]); metric.update(p[2:], y[2:])
>>> round(metric.result(), 4)
0.8256
>>> PrecisionRecall(3)(p, y)['recall'].tolist()
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from .. import checks
from ..errors import ConfigError, DataError

__all__ = ['Metric', 'Misclassification', 'Accuracy', 'TopKMisclassification', 'LogLoss',
           'PrecisionRecall', 'as_metrics']


def _as_probabilities(probabilities: Any) -> torch.Tensor:
    p = probabilities if isinstance(probabilities, torch.Tensor) \
        else torch.as_tensor(np.asarray(probabilities))
    if not (p.is_floating_point()):
        p = p.to(torch.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise DataError('expected probabilities of shape (batch, classes), received shape '
                        f'{tuple(p.shape)}')
    return p.detach()


def _as_labels(labels: Any, p: torch.Tensor) -> torch.Tensor:
    y = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    if y.ndim != 1:
        raise DataError(f'expected labels of shape (batch,), received shape {tuple(y.shape)}')
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise DataError(f'expected integer class labels, received dtype {y.dtype}')
    if len(y) != len(p):
        raise DataError(f'expected one label per row of probabilities ({len(p)}), received '
                        f'{len(y)} labels')
    y = y.detach().to(device=p.device, dtype=torch.long)
    if len(y):
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= p.shape[1]:
            raise DataError(f'expected labels in 0 .. {p.shape[1] - 1} (one per column of '
                            f'probabilities), received {low if low < 0 else high}')
    return y


class Metric:
    """Base class of the metrics: streaming sums, one-shot ``__call__``.

    Subclasses implement :meth:`_accumulate` (add one validated batch to
    ``self._sums`` with :meth:`_add`) and :meth:`_value` (the result from the
    sums); ``self.count`` is the number of rows seen.
    """

    name = 'metric'

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.count = 0
        self._sums: dict[str, torch.Tensor] = {}

    def update(self, probabilities: Any, labels: Any) -> None:
        """Add a batch: ``probabilities`` ``(B, K)`` and true classes ``labels`` ``(B,)``."""
        p = _as_probabilities(probabilities)
        y = _as_labels(labels, p)
        self._check(p)
        if len(y):
            self._accumulate(p, y)
            self.count += len(y)

    def result(self) -> Any:
        """The value over every row since the last reset; ``None`` if there was none."""
        if self.count == 0:
            return None
        return self._value({k: v.cpu().numpy() for k, v in self._sums.items()})

    def __call__(self, probabilities: Any, labels: Any) -> Any:
        """The value on this batch alone; the running state is left as it was."""
        one_shot = copy.copy(self)
        one_shot.reset()
        one_shot.update(probabilities, labels)
        return one_shot.result()

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'

    # -- for subclasses ----------------------------------------------------------------

    def _check(self, p: torch.Tensor) -> None:
        """Refuse probabilities this metric cannot use (after the common checks)."""

    def _add(self, key: str, value: torch.Tensor) -> None:
        """Add ``value`` (a tensor) to the running sum ``key``."""
        sums = self._sums
        sums[key] = value if key not in sums else sums[key] + value.to(sums[key].device)

    def _accumulate(self, p: torch.Tensor, y: torch.Tensor) -> None:
        """Add one batch: probabilities ``p`` (B, K) and classes ``y`` (B,), with
        :meth:`_add`."""
        raise NotImplementedError(f'{type(self).__name__} must implement _accumulate')

    def _value(self, sums: dict[str, np.ndarray]) -> Any:
        """The metric's result from ``sums``, the running sums as numpy arrays."""
        raise NotImplementedError(f'{type(self).__name__} must implement _value')


class Misclassification(Metric):
    """The error rate: the fraction of rows whose most probable class is wrong.

    Ties go to the lowest class index (as ``argmax`` does).
    """

    name = 'misclassification'

    def _accumulate(self, p: torch.Tensor, y: torch.Tensor) -> None:
        self._add('wrong', (p.argmax(1) != y).sum())

    def _value(self, sums: dict[str, np.ndarray]) -> Any:
        return float(sums['wrong']) / self.count


class Accuracy(Misclassification):
    """The fraction of rows whose most probable class is right (1 - error rate)."""

    name = 'accuracy'

    def _value(self, sums: dict[str, np.ndarray]) -> Any:
        return (self.count - float(sums['wrong'])) / self.count


class TopKMisclassification(Metric):
    """The fraction of rows whose true class is not among the ``k`` most probable.

    A row counts as a hit when fewer than ``k`` classes are strictly more
    probable than the true class, so ties at the ``k``-th place count in the
    row's favour (as neon's does).

    Parameters
    ----------
    k : int
        A positive integer; ``k = 1`` is :class:`Misclassification` (up to ties).
    """

    def __init__(self, k: int) -> None:
        self.k = checks.integer(k, 'k', 1, where='TopKMisclassification')
        self.name = f'top_{self.k}_misclassification'
        super().__init__()

    def _accumulate(self, p: torch.Tensor, y: torch.Tensor) -> None:
        true = p.gather(1, y[:, None])
        better = (p > true).sum(1)
        self._add('missed', (better >= self.k).sum())

    def _value(self, sums: dict[str, np.ndarray]) -> Any:
        return float(sums['missed']) / self.count

    def __repr__(self) -> str:
        return f'TopKMisclassification(k={self.k})'


class LogLoss(Metric):
    """The mean negative log probability of the true class (cross-entropy).

    Probabilities are clipped to ``[eps, 1 - eps]`` first, like
    scikit-learn's ``log_loss``, so a zero probability costs
    ``-log(eps)`` rather than infinity.

    Parameters
    ----------
    eps : float, optional
        The clipping bound, in (0, 0.5); by default the machine epsilon of the
        probabilities' dtype (scikit-learn's default: about 1.2e-7 for
        float32, 2.2e-16 for float64).
    """

    name = 'log_loss'

    def __init__(self, eps: float | None = None) -> None:
        self.eps = checks.number(eps, 'eps', above=0, below=0.5, where='LogLoss', none=True)
        super().__init__()

    def _accumulate(self, p: torch.Tensor, y: torch.Tensor) -> None:
        eps = torch.finfo(p.dtype).eps if self.eps is None else self.eps
        true = p.gather(1, y[:, None])[:, 0].clamp(eps, 1 - eps)
        self._add('nll', -true.to(torch.float64).log().sum())

    def _value(self, sums: dict[str, np.ndarray]) -> Any:
        return float(sums['nll']) / self.count

    def __repr__(self) -> str:
        return 'LogLoss()' if self.eps is None else f'LogLoss(eps={self.eps!r})'


class PrecisionRecall(Metric):
    """Precision and recall of each class, and their macro (unweighted) means.

    The predicted class of a row is its most probable one. A class never
    predicted has precision 0, a class that never occurs has recall 0
    (scikit-learn's ``zero_division=0``); the macro means include them.

    ``result()`` returns a dict: ``'precision'``, ``'recall'`` (float arrays
    of length ``num_classes``), ``'support'`` (rows of each true class, an int
    array), ``'macro_precision'`` and ``'macro_recall'`` (floats).

    Parameters
    ----------
    num_classes : int
        The number of classes (columns of the probabilities), at least 2.
    """

    name = 'precision_recall'

    def __init__(self, num_classes: int) -> None:
        self.num_classes = checks.integer(num_classes, 'num_classes', 2,
                                          where='PrecisionRecall')
        super().__init__()

    def _check(self, p: torch.Tensor) -> None:
        if p.shape[1] != self.num_classes:
            raise DataError(f'PrecisionRecall: expected probabilities with {self.num_classes} '
                            f'columns (num_classes), received {p.shape[1]}')

    def _accumulate(self, p: torch.Tensor, y: torch.Tensor) -> None:
        k = self.num_classes
        pairs = y * k + p.argmax(1)
        self._add('confusion', torch.bincount(pairs, minlength=k * k).reshape(k, k))

    def _value(self, sums: dict[str, np.ndarray]) -> Any:
        confusion = sums['confusion']          # rows: true class, columns: predicted
        hits = np.diag(confusion).astype(np.float64)
        predicted, support = confusion.sum(0), confusion.sum(1)
        precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
        recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
        return {'precision': precision, 'recall': recall, 'support': support.astype(np.int64),
                'macro_precision': float(precision.mean()),
                'macro_recall': float(recall.mean())}

    def __repr__(self) -> str:
        return f'PrecisionRecall(num_classes={self.num_classes})'


def _is_metric(obj: Any) -> bool:
    return not isinstance(obj, type) and all(
        callable(getattr(obj, attr, None)) for attr in ('reset', 'update', 'result')) \
        and isinstance(getattr(obj, 'name', None), str)


def as_metrics(metrics: Any) -> list[Metric]:
    """Return ``metrics`` (one metric or a list of them) as a list, checked.

    Raises :class:`ConfigError` for an object that is not a metric (a metric
    class instead of an instance included) and for two metrics reporting
    under the same name.
    """
    items = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
    if not items:
        raise ConfigError('expected at least one metric (e.g. Accuracy()), received an '
                          'empty list')
    for item in items:
        if not _is_metric(item):
            hint = f'the class {item.__name__}; did you mean {item.__name__}(...)?' \
                if isinstance(item, type) else f'{type(item).__name__} {item!r}'
            raise ConfigError('expected a metric (an object with name, reset, update and '
                              f'result, e.g. Accuracy()), received {hint}')
    names = [item.name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f'expected metrics with distinct names, received {repeated} more '
                          'than once')
    return items
