"""scikit-learn's estimator interface to pydnn2 nets: :class:`NNClassifier`.

An :class:`NNClassifier` builds a fresh :class:`~pydnn2.net.NN` at every
``fit`` (by calling ``build(net, **build_params)``), trains it on the rows of
``X``, and predicts with it; so it works wherever scikit-learn takes a
classifier: ``Pipeline``, ``cross_val_score``, ``GridSearchCV``.

Needs scikit-learn 1.6 or newer (``validate_data`` and estimator tags).

>>> import numpy as np
>>> from pydnn2.sklearn import NNClassifier
>>> rng = np.random.RandomState(0)
>>> X = np.concatenate([rng.normal(-2, 1, (60, 3)), rng.normal(2, 1, (60, 3))])
>>> y = np.array(['left'] * 60 + ['right'] * 60)
>>> clf = NNClassifier(epochs=5, random_state=0, device='cpu').fit(X, y)
>>> clf.classes_.tolist(), clf.score(X, y) > 0.9
(['left', 'right'], True)
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence, cast

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import checks, files
from .errors import ConfigError, DataError
from .model.activations import activation_name
from .net import NN
from .preprocess.arrays import ArrayPreprocessor
from .train.annealers import LearningRateAdjuster
from .train.rules import Adam, LearningRule, StochasticGradientDescent

try:
    from sklearn.utils.validation import validate_data
except ImportError:                                     # scikit-learn < 1.6
    raise ImportError(f'pydnn2.sklearn needs scikit-learn >= 1.6; received scikit-learn '
                      f'{sklearn.__version__}') from None

#: The channel the rows of ``X`` are served on.
CHANNEL = 'x'
#: Learning rules by name; each takes the learning rate.
RULES = {'adam': Adam, 'sgd': StochasticGradientDescent}
_NESTED = 'build_params__'
_WHERE = 'NNClassifier'


def mlp(net: NN, hidden: int | Sequence[int] = 64, dropout: float = 0.0) -> None:
    """The default ``build``: hidden layers, then the logistic classifier.

    Parameters
    ----------
    net : pydnn2.NN
        The net to add layers to.
    hidden : int or sequence of int
        Units of each hidden layer (``add_hidden``: dense, batch norm,
        the net's activation); ``()`` for logistic regression.
    dropout : float
        Dropout rate after each hidden layer (0 for none).

    Examples
    --------
    Two hidden layers of 64 and 32 units, each followed by dropout:

    >>> NNClassifier(build_params={'hidden': (64, 32), 'dropout': 0.2})   # build=mlp
    NNClassifier(build_params={'dropout': 0.2, 'hidden': (64, 32)})
    """
    sizes = (hidden,) if checks.is_integer(hidden) else hidden     # numpy integers too
    for units in cast(Sequence[int], sizes):
        net.add_hidden(units)
        if dropout:
            net.add_dropout(dropout)
    net.add_logistic()


class NNClassifier(ClassifierMixin, BaseEstimator):
    """A pydnn2 net as a scikit-learn classifier.

    Every ``fit`` builds a new net: it holds out ``valid_fraction`` of the
    rows (drawn from ``random_state``) as the validation set that pydnn2's
    training needs, standardises the rows with an
    :class:`~pydnn2.preprocess.ArrayPreprocessor` fitted on the rest, calls
    ``build(net, **build_params)`` to add the layers, and trains for
    ``epochs`` epochs; the weights of the epoch with the best validation
    loss are kept. Labels may be of any type scikit-learn allows (strings
    too): they are encoded as ``classes_`` (sorted), as ``LabelEncoder``
    does. Files are written only to a temporary folder during ``fit``.

    Parameters
    ----------
    build : callable, optional
        ``build(net, **build_params)`` adds the layers to the
        :class:`~pydnn2.NN` and must end with ``add_logistic()``. Default:
        :func:`mlp` (one hidden layer of 64 units).
    build_params : dict, optional
        Keyword arguments for ``build``. Each is also a parameter of the
        estimator named ``build_params__<name>``, for ``set_params`` and
        ``GridSearchCV`` (``{'build_params__hidden': [16, 64]}``).
    input_shape : tuple of int, optional
        The shape each row of ``X`` is reshaped to before the net sees it,
        e.g. ``(1, 8, 8)`` for a convolutional net or ``(8, 8)`` (time steps,
        features) for a recurrent one; by default rows stay ``(n_features,)``.
    batch_size : int
        Rows per training batch; clipped to the training rows of small sets.
    epochs : int
        Training epochs.
    learning_rule : {'adam', 'sgd'} or callable
        The learning rule, or a factory ``learning_rule(learning_rate)``
        returning a :class:`~pydnn2.LearningRule`, e.g.
        ``functools.partial(nn.Momentum, 0.5, 0.9)``.
    learning_rate : float or LearningRateAdjuster
        The learning rate, or an annealer (copied at every fit).
    valid_fraction : float
        Share of the rows held out for validation, in [0, 1); at least one
        row is held out and at least two are left for training. With 0 (or
        fewer than 3 rows) the net is validated on its training rows.
    patience : int, optional
        Stop after this many epochs without a better validation loss.
    activation : {'relu', 'tanh', 'sigmoid', 'prelu'}
        The net's default activation.
    device : str or torch.device, optional
        Where to train; CUDA if available, else the CPU.
    random_state : int, numpy.random.RandomState or None
        Seeds the validation split, the weights, the shuffles and dropout;
        an int makes ``fit`` reproducible (on the CPU, bit for bit).
    verbose : bool
        Print the epoch table while training.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted; column ``i`` of ``predict_proba`` is
        ``classes_[i]``.
    net_ : pydnn2.NN
        The trained net (``net_.module`` is the ``torch.nn.Module``; it can be
        exported with :func:`pydnn2.export.export`).
    history_ : dict of lists
        The training history, one entry per epoch.
    n_features_in_ : int
        Number of features seen during ``fit``.

    Notes
    -----
    scikit-learn's own estimator checks (``parametrize_with_checks``) pass
    on the CPU, none expected to fail. On CUDA, kernels that depend on the
    batch may break ``check_methods_subset_invariance`` and
    ``check_fit_idempotent`` in the last bits; run the checks with
    ``device='cpu'``. Not supported: sample weights, class weights, sparse
    input, NaN and multi-output targets; a ``y`` with a single class is
    refused with a ``ValueError`` (a net needs two outputs at least), as the
    checks allow.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import GridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(NNClassifier(epochs=3, random_state=0, device='cpu'),
    ...                       {'build_params__hidden': [8, 32]}, cv=2).fit(X, y)
    >>> sorted(search.best_params_)
    ['build_params__hidden']
    """

    def __init__(self, build: Callable[..., Any] | None = None,
                 build_params: dict[str, Any] | None = None,
                 input_shape: tuple[int, ...] | None = None, batch_size: int = 32,
                 epochs: int = 10, learning_rule: str | Callable[..., LearningRule] = 'adam',
                 learning_rate: float | LearningRateAdjuster = 0.01,
                 valid_fraction: float = 0.1, patience: int | None = None,
                 activation: str | Callable[..., Any] = 'relu',
                 device: str | torch.device | None = None,
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool = False) -> None:
        self.build = build
        self.build_params = build_params
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.epochs = epochs
        self.learning_rule = learning_rule
        self.learning_rate = learning_rate
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.activation = activation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters ----------------------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters; with ``deep``, also each
        ``build_params__<name>``.

        >>> NNClassifier(build_params={'hidden': 8}).get_params()['build_params__hidden']
        8
        """
        params = super().get_params(deep)
        if deep and isinstance(self.build_params, dict):
            params.update({_NESTED + k: v for k, v in self.build_params.items()})
        return params

    def set_params(self, **params: Any) -> NNClassifier:
        """Set parameters; ``build_params__<name>=value`` sets one entry of
        ``build_params`` (in a new dict). Returns ``self``.

        >>> NNClassifier().set_params(build_params__hidden=16).build_params
        {'hidden': 16}
        """
        nested = {k[len(_NESTED):]: params.pop(k) for k in list(params)
                  if k.startswith(_NESTED)}
        super().set_params(**params)
        if nested:
            base = self.build_params if isinstance(self.build_params, dict) else {}
            self.build_params = {**base, **nested}
        return self

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> NNClassifier:
        """Build a new net and train it on ``X`` (n_samples, n_features) and ``y``.

        Returns
        -------
        self
        """
        options = self._checked_options()
        _check_2d(X, 'fit')
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64))
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise DataError(f'{_WHERE} needs at least 2 classes in y; received 1 class '
                            f'({encoder.classes_[0]!r})')
        rows, codes = self._rows(X), encoder.transform(y)
        rng = check_random_state(self.random_state)
        train, valid = _split(len(rows), options['valid_fraction'], rng)
        sets = ((rows[train], codes[train]), (rows[valid], codes[valid]),
                (rows[:0], codes[:0]))
        self.net_, self.history_ = self._train(sets, len(encoder.classes_), options,
                                               int(rng.randint(2 ** 31 - 1)))
        self.classes_ = encoder.classes_
        return self

    def _checked_options(self) -> dict[str, Any]:
        """The parameters checked (as ``fit`` needs them), or a ConfigError."""
        where = _WHERE
        if self.build is not None and not callable(self.build):
            raise ConfigError(f'{where}: build must be a callable build(net, **build_params); '
                              f'received {self.build!r}')
        if self.build_params is not None and not isinstance(self.build_params, dict):
            raise ConfigError(f'{where}: build_params must be a dict or None; received '
                              f'{self.build_params!r}')
        return {'batch_size': checks.batch_size(self.batch_size, where=where),
                'epochs': checks.integer(self.epochs, 'epochs', 1, where=where),
                'valid_fraction': checks.number(self.valid_fraction, 'valid_fraction',
                                                at_least=0, below=1, where=where),
                'patience': checks.integer(self.patience, 'patience', 1, where=where,
                                           none=True),
                'activation': activation_name(self.activation),
                'rule': self._rule()}

    def _rule(self) -> LearningRule:
        """A fresh learning rule (the annealer copied, so fits never share one)."""
        factory = RULES.get(self.learning_rule) if isinstance(self.learning_rule, str) \
            else self.learning_rule
        if not callable(factory):
            raise ConfigError(f'{_WHERE}: learning_rule must be one of {sorted(RULES)} or a '
                              f'callable learning_rule(learning_rate); received '
                              f'{self.learning_rule!r}')
        rate = self.learning_rate
        if isinstance(rate, LearningRateAdjuster):
            rate = copy.deepcopy(rate)
        else:
            rate = checks.number(rate, 'learning_rate', above=0, where=_WHERE,
                                 expected='a number > 0 or a LearningRateAdjuster')
        rule = factory(rate)
        if not isinstance(rule, LearningRule):
            raise ConfigError(f'{_WHERE}: learning_rule(learning_rate) must return a pydnn2 '
                              f'LearningRule; received {type(rule).__name__}')
        return rule

    def _rows(self, X: np.ndarray) -> np.ndarray:
        """``X`` as float32 rows of ``input_shape``."""
        X = np.asarray(X, dtype=np.float32)
        if self.input_shape is None:
            return X
        shape = self.input_shape
        if not (isinstance(shape, (tuple, list)) and shape
                and all(checks.is_integer(s) and s > 0 for s in shape)):
            raise ConfigError(f'{_WHERE}: input_shape must be a tuple of positive integers '
                              f'or None; received {shape!r}')
        if int(np.prod(shape)) != X.shape[1]:
            raise DataError(f'{_WHERE}: input_shape {tuple(shape)} holds '
                            f'{int(np.prod(shape))} values per row; expected it to hold the '
                            f'{X.shape[1]} features of X')
        return X.reshape((len(X),) + tuple(shape))

    def _train(self, sets: tuple, num_classes: int, options: dict[str, Any],
               seed: int) -> tuple[NN, Any]:
        """Build and train a net on ``sets``; returns ``(net, history)``."""
        pre = ArrayPreprocessor(sets, channel=CHANNEL)
        batch = min(options['batch_size'], len(sets[0][1]))
        net = NN(pre, CHANNEL, num_classes, batch, seed, options['activation'],
                 name='NNClassifier', output_dir=None, device=self.device,     # (no files)
                 verbose=False)
        (mlp if self.build is None else self.build)(net, **(self.build_params or {}))
        net.check_complete()
        history = net.train(options['rule'], epochs=options['epochs'],
                            patience=options['patience'], verbose=bool(self.verbose),
                            progress=False)
        return net, history

    # -- predicting ----------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order.

        Each row sums to 1 (the net's softmax, in float64).
        """
        check_is_fitted(self)
        _check_2d(X, 'predict_proba')
        X = validate_data(self, X, reset=False, dtype=(np.float32, np.float64))
        _, probabilities = self.net_.predict(self._rows(X))
        probabilities = probabilities.astype(np.float64)
        return probabilities / probabilities.sum(1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, as labels from ``classes_``."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]

    # -- pickling ------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())     # a copy: never touch self.__dict__
        if 'net_' in state:                  # the net as pydnn2's plain file data
            state['net_'] = files.net_state(state['net_'])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get('net_'), dict):
            state = {**state, 'net_': NN.from_state(state['net_'], self._device(state))}
        super().__setstate__(state)

    @staticmethod
    def _device(state: dict[str, Any]) -> Any:
        """The device to rebuild an unpickled net on: its own, if that exists here."""
        device = state.get('device')
        if device is not None and torch.device(device).type == 'cuda' \
                and not torch.cuda.is_available():
            return 'cpu'
        return device


def _check_2d(X: Any, method: str) -> None:
    """Refuse arrays of 3 or more dimensions with a hint at ``input_shape``."""
    try:
        shape = np.shape(X) if isinstance(X, (np.ndarray, list, tuple)) else ()
    except ValueError:                   # ragged lists: validate_data explains
        return
    if len(shape) > 2:
        raise DataError(f'{_WHERE}.{method} needs X as a 2-D array (n_samples, n_features); '
                        f'received shape {shape} (flatten the rows, e.g. '
                        f'X.reshape(len(X), -1), and give the net its row shape with '
                        f'input_shape={shape[1:]})')


def _split(n: int, valid_fraction: float,
           rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled ``(train, valid)`` row indices: at least 1 validation row and 2
    training rows; all rows for both when ``valid_fraction`` is 0 or n < 3."""
    order = rng.permutation(n)
    if valid_fraction == 0 or n < 3:
        return order, order
    n_valid = min(max(1, int(round(n * valid_fraction))), n - 2)
    return order[n_valid:], order[:n_valid]

