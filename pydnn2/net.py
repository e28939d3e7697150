"""NN: the network a user builds, trains and predicts with.

``NN`` is a thin front: it owns a :class:`~pydnn2.model.graph.Graph` (and through it
the one ``torch.nn.Module``), a preprocessor and a device; its ``add_*`` methods come
from :class:`~pydnn2.model.builder.Builder`; training, prediction, sizing and files
are handed to :mod:`pydnn2.train`, :mod:`.evaluate`, :mod:`.model.size`, :mod:`.files`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Mapping, overload

import numpy as np
import torch

from . import checks, distributed, evaluate, files, launcher, rng as rngs, train as training
from .evaluate.interpret import Interpretation
from .errors import ConfigError, DataError, FileFormatError, NetBuildError
from .model import description, initializers as inits, layout
from .model.activations import activation_name, relu
from .model.builder import Builder, input_spec
from .model.graph import Graph
from .model.html import layer_table_html
from .model.recording import builder_method, unplain
from .model.size import SizeReport, net_size_of
from .preprocess import Preprocessor, preprocessor_class
from .table import Table
from .train.history import History
from .train.lr_find import LRFindResult, lr_find
from .train.rules import LearningRule

_LAYER_TABLE = Table(('#', 'pathway', 'call', 'layer', 'in -> out', 'params'))


def default_device() -> torch.device:
    """CUDA when available (under torchrun, ``cuda:LOCAL_RANK``: one device per process),
    else the CPU."""
    return distributed.default_device()


class NN(Builder):
    """A neural network to which you add layers, then train and predict with.

    Parameters
    ----------
    preprocessor : pydnn2.preprocess.Preprocessor
        Serves the training, validation and test sets, channel by channel.
    channel : str
        The channel the main pathway starts from (e.g. ``'images'``).
    num_classes : int
        Number of classes; labels must lie in ``0 .. num_classes - 1``.
    batch_size : int
        Rows per training batch.
    rng : numpy.random.RandomState, numpy.random.Generator or int
        Seeds weight initialisation, shuffling and dropout.
    activation : function
        Default nonlinearity: relu, tanh, sigmoid or prelu.
    name : str
        Stem of the files written during training: a plain file name (no
        folders: those go in ``output_dir``).
    output_dir : str
        Folder for those files ('' is the working directory).
    device : str or torch.device, optional
        Where to train; CUDA if available, else the CPU.
    verbose : bool
        Print each call's ``in_shape -> out_shape`` as it is added.
    initialization : {'pydnn', 'he-glorot'}
        How weights without an ``init=`` of their own are drawn: pydnn's
        scheme (normal with std ``1 / sqrt(fan_in)`` and biases 1 before relu
        and prelu, Glorot before tanh and sigmoid, a zero classifier), so that
        pydnn's hyperparameters train as they did; or He / Glorot with zero
        biases (see :func:`~pydnn2.model.initializers.default_initializer`).

    Examples
    --------
    >>> import numpy as np
    >>> from pydnn2 import neuralnet as nn, preprocess, data
    >>> sets = preprocess.split_training_data(data.load_digits(), 64, 80, 10, 10)
    >>> pre = preprocess.ArrayPreprocessor(sets)
    >>> net = nn.NN(pre, 'images', 10, 64, np.random.RandomState(0), verbose=False)
    >>> net.add_convolution(32, (3, 3), (1, 1))
    >>> net.add_dropout()
    >>> net.add_hidden(128)
    >>> net.add_logistic()
    >>> net.output_shape
    (10,)
    """

    def __init__(self, preprocessor: Preprocessor, channel: str, num_classes: int,
                 batch_size: int, rng: np.random.RandomState | np.random.Generator | int,
                 activation: Callable[..., Any] | str = relu, name: str = 'net',
                 output_dir: str | None = '', *, device: str | torch.device | None = None,
                 verbose: bool = True, initialization: str = 'pydnn') -> None:
        if not isinstance(preprocessor, Preprocessor):
            raise ConfigError('preprocessor must be a pydnn2.preprocess.Preprocessor (e.g. '
                              'ArrayPreprocessor, Rotator360 or DatasetPreprocessor); received '
                              f'{type(preprocessor).__name__}')
        self.num_classes = checks.integer(num_classes, 'num_classes', 2)
        self.batch_size = checks.batch_size(batch_size)
        self.name = name               # a plain file name (checked: files.checked_name)
        self.preprocessor, self.channel, self.rng = preprocessor, channel, rng
        self.activation_name = activation_name(activation)
        self.output_dir, self.verbose = output_dir, verbose
        self.device = checks.device(device) if device is not None else default_device()
        self.seed = rngs.seed_from(rng)
        self.initialization = checks.one_of(initialization, 'initialization', inits.SCHEMES)
        self._net, self._pid = self, 0
        self.graph = Graph(torch.Generator().manual_seed(self.seed), self.device,
                           self.initialization)
        self.graph.reset(input_spec(preprocessor, channel), self)
        self._initialized = False      # see the initialized property
        self.memory_layout = None      # the layout train chose by measuring (model.layout)
        self.history = History.empty()     # the epochs trained: none yet
        preprocessor.to(self.device)
        self.check_data()

    def check_data(self) -> None:
        """Raise :class:`~pydnn2.errors.DataError` unless every label is in ``0 ..
        num_classes - 1`` and the training set holds a batch (when the net is made,
        and when training starts: sets attached later are checked before any step)."""
        pre = self.preprocessor
        if not pre.has_data():
            return
        for set_name, name in zip(('training', 'validation', 'test'), ('train', 'valid', 'test')):
            if (y := pre.labels(name)) is None:     # a stream: checked as its labels come
                continue
            y = np.asarray(y)
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(f'labels outside num_classes: the {set_name} set has class '
                                f'{int(y.max() if y.max() >= self.num_classes else y.min())} '
                                f'but num_classes is {self.num_classes} (valid: 0 .. '
                                f'{self.num_classes - 1})')
        rows = pre.num_rows('train')
        if rows is not None and rows < self.batch_size:
            raise DataError(f'batch_size {self.batch_size} is larger than the training set '
                            f'({rows} rows); use a smaller batch_size')

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | torch.device | None = None,
                   filename: str = '<state>') -> NN:
        """Rebuild a net (module, weights, preprocessor statistics) from
        :func:`pydnn2.files.net_state`'s plain data."""
        if device is not None:
            device = checks.device(device)      # a bad device is the caller's, not the file's
        try:
            config = state['config']
            pre = preprocessor_class(state['preprocessor']['class']).from_state(
                state['preprocessor']['state'])
            net = cls(pre, config['channel'], config['num_classes'], config['batch_size'],
                      config['seed'], config['activation'], config['name'],
                      config['output_dir'], device=device, verbose=False,
                      initialization=config.get('initialization', 'he-glorot'))
            net.replay(state['calls'])
            net.module.load_state_dict(state['weights'])
            net.memory_layout = layout.LayoutChoice.from_dict(config.get('memory_layout'))
            layout.adopt(net, net.memory_layout)
        except Exception as exc:  # noqa: BLE001 - whatever a file's contents break is the file's
            raise FileFormatError(f'{filename!r} has a pydnn2 marker but its contents are '
                                  f'damaged: {type(exc).__name__}: {exc}') from None
        return net

    @property
    def name(self) -> str:
        """The stem of the files training writes (``<name>_best_net.pt``, ...): a plain
        file name, checked whenever it is set (a :class:`ConfigError` otherwise)."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        """Set the name, refusing one that is not a plain file name."""
        self._name = files.checked_name(value)

    @property
    def module(self) -> torch.nn.Module:
        """The compiled ``torch.nn.Module``, whose ``forward`` takes a dict of
        channel tensors and returns the logits."""
        return self.graph.module

    @property
    def nodes(self) -> list[Any]:
        """The graph's nodes (channel inputs, layers, merges), in order added."""
        return list(self.graph.nodes)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The recorded builder calls, as plain data."""
        return [{k: v for k, v in c.items() if k in ('pathway', 'method', 'args')}
                for c in self.graph.calls]

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of one row at the end of the main pathway."""
        return self.graph.output.out_shape

    def replay(self, calls: list[dict[str, Any]]) -> None:
        """Rebuild the net from recorded builder calls (as :attr:`calls` gives them).

        Only builder methods can be named; pathways still held keep working.
        """
        def run(call: dict[str, Any]) -> None:
            handle = self.graph.handles[call['pathway']]
            method = builder_method(type(handle), call['method'])
            method(handle, **{k: unplain(v, self.graph.handles)
                              for k, v in call['args'].items()})

        self.graph.replay(calls, input_spec(self.preprocessor, self.channel), run)

    def undo(self) -> str:
        """Remove the last builder call (and every layer it added).

        Layers that remain keep their weights. Returns a description of the
        undone call.
        """
        if not self.graph.calls:
            raise NetBuildError('undo: nothing to undo; the net has no layers yet')
        last = self.graph.calls[-1]
        state = {k: v.clone() for k, v in self.module.state_dict().items()}
        loaded = self.module.weights_loaded
        self.replay(self.calls[:-1])
        self.graph.sites.pop(last.get('site'), None)
        current = self.module.state_dict()
        self.module.load_state_dict({k: state[k] if k in state and state[k].shape == v.shape
                                     else v for k, v in current.items()})
        self.module.weights_loaded = loaded
        args = ', '.join(f'{k}={v!r}' for k, v in last['args'].items())
        return f'{last["method"]}({args})'

    def check_complete(self) -> None:
        """Raise :class:`NetBuildError` unless the net can be trained."""
        if not self.graph.output.spec.final:
            raise NetBuildError('the net has no output layer: finish it with add_logistic() '
                                '(or add_mlp) before training or predicting')
        open_ = self.graph.unmerged()
        if open_:
            raise NetBuildError(f'pathways {open_} were never merged into the net; merge them '
                                'with merge_pathways() or undo their creation')

    def layer_table(self) -> list[dict[str, Any]]:
        """One dict per node: index, call, layer, in/out shapes, parameters, pathway."""
        rows = []
        for node in self.graph.nodes:
            module = self.graph.module_of(node)
            rows.append({'index': node.id, 'call': node.call, 'layer': node.spec.describe(),
                         'in_shape': [self.graph.nodes[i].out_shape for i in node.inputs],
                         'out_shape': node.out_shape, 'pathway': node.pathway,
                         'params': sum(p.numel() for p in module.parameters()) if module
                         else 0})
        return rows

    def _table_rows(self) -> list[tuple[str, ...]]:
        return [(str(r['index']), str(r['pathway']), r['call'], r['layer'],
                 f'{" + ".join(map(str, r["in_shape"])) or "-"} -> {r["out_shape"]}',
                 f'{r["params"]:,}') for r in self.layer_table()]

    def _title(self) -> str:
        return (f'NN {self.name!r}: {self.num_classes} classes, batch {self.batch_size}, '
                f'on {self.device}')

    def __repr__(self) -> str:
        total = sum(p.numel() for p in self.module.parameters())
        return (f'{self._title()}\n{_LAYER_TABLE.render(self._table_rows())}\n'
                f'total parameters: {total:,}')

    def _repr_html_(self) -> str:
        """The layer table as HTML for notebooks, pathways drawn as branches."""
        params = [r['params'] for r in self.layer_table()]
        return layer_table_html(self._title(), self.graph, params,
                                f'total parameters: {sum(params):,}')

    @property
    def layers(self) -> list[description.Layer]:
        """One :class:`~pydnn2.model.description.Layer` per node, for inspection.

        ``net.layers[i]`` is node ``i`` of ``repr(net)`` (node 0 is the main
        channel): ``.type``, ``.config``, ``.out_shape``, ``.module``, and its
        parameters by short name in ``.params``, with ``.W`` and ``.b``.

        >>> net.layers[1].W.shape                            # doctest: +SKIP
        torch.Size([32, 1, 3, 3])
        """
        return [description.Layer(self.graph, node) for node in self.graph.nodes]

    def get_description(self, get_weights: bool = False) -> dict[str, Any]:
        """The net as plain data (neon's ``get_description``).

        Returns a dict whose ``['model']['config']['layers']`` holds one dict
        per node (as :attr:`layers`): ``'type'`` (e.g. ``'lstm'``),
        ``'config'`` (the layer's builder arguments), ``'name'``, ``'call'``,
        ``'inputs'``, ``'in_shape'``, ``'out_shape'``, ``'pathway'`` and, with
        ``get_weights=True``, ``'params'``: ``{short name: numpy array}``
        copied to the host. ``['model']['config']`` also holds the NN's own
        arguments, and ``['calls']`` the recorded builder calls.
        """
        return description.describe(self, get_weights)

    def net_size(self, **options: Any) -> SizeReport:
        """Cost, parameters and calibrated time estimate of this net; see
        :func:`pydnn2.model.size.net_size_of`."""
        return net_size_of(self, **options)

    def speed_choice(self, amp: str | None = None, recorded: Any = None, log: Any = None,
                     across: Any = None) -> Any:
        """How this net trains fastest, measured once and kept in ``memory_layout``;
        see :func:`pydnn2.model.layout.speed_choice`."""
        return layout.speed_choice(self, amp, recorded, log, across)

    @property
    def initialized(self) -> bool:
        """Whether the weights are no longer the builder's first draw.

        False while every weight is as its ``add_*`` call drew it; True once
        the net has been trained, loaded, given weights by :meth:`set_params`
        or initialised by :meth:`init_model`.
        """
        return self._initialized or bool(self.module.weights_loaded)

    def init_model(self, initializer: inits.Initializer | dict | None = None,
                   overwrite: bool = False) -> bool:
        """(Re-)initialise the weights (MXNet.jl's ``init_model``).

        Every ``add_*`` call initialises its own layer (by its ``init=`` /
        ``bias=``, else by the activation that follows), so weights can be
        inspected before training. This method draws them again, from the
        net's random generator (continuing its sequence):

        - weight matrices, filters, lookup tables and recurrent weights with
          ``initializer`` when given, else with the layer's own initialiser;
        - biases with their own initialiser (zeros by default); batch norm
          back to scale 1, shift 0 and fresh running statistics; PReLU slopes
          back to 0.25.

        With ``overwrite=True`` this always happens. With ``overwrite=False``
        it happens only when ``initializer`` is given and the net is not yet
        :attr:`initialized`; otherwise the weights stay as they are. Either
        way the net counts as initialised afterwards, so ``train`` keeps the
        weights (unless ``force_init=True``).

        Parameters
        ----------
        initializer : pydnn2.model.initializers.Initializer, optional
            E.g. ``Gaussian(scale=0.01)`` or ``GlorotUniform()``.
        overwrite : bool
            Re-initialise even an initialised (trained, loaded) net.

        Returns
        -------
        bool
            True when the weights were drawn again, False when kept.

        >>> net.init_model(Uniform(-0.05, 0.05))             # doctest: +SKIP
        True
        """
        initializer = inits.as_initializer(initializer, 'init_model', 'initializer')
        redraw = overwrite or (initializer is not None and not self.initialized)
        if redraw:
            self.graph.reinitialize(initializer)
        self._initialized = True
        return redraw

    def get_params(self) -> dict[str, torch.Tensor]:
        """A copy of every weight and buffer (``module.state_dict()`` cloned)."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def set_params(self, params: Mapping[str, torch.Tensor]) -> None:
        """Load weights and buffers from :meth:`get_params`' dict."""
        self.module.load_state_dict(params)

    def train(self, updater: LearningRule, epochs: int = 200, final_epochs: int = 0,
              l1_reg: float = 0, l2_reg: float = 0, force_init: bool = False,
              devices: int | None = None, **options: Any) -> History:
        """Train the net; see :func:`pydnn2.train.loop.train` for every option.

        Training starts from the weights the net has: it never re-initialises
        them unless ``force_init=True``, which first calls
        ``init_model(overwrite=True)`` (each layer's own initialisers, drawn
        afresh). Returns the history: a dict of lists, one entry per epoch (a
        :class:`~pydnn2.train.history.History`, which shows as the epoch table).

        ``devices=N`` trains data-parallel in ``N`` processes that this call
        starts on this machine (forked; CPU nets), as ``torchrun
        --nproc_per_node=N`` would, and brings rank 0's weights, history and run
        ids back; it checks the options before starting any process, raises a
        rank's error as that error, and stops every rank on a Ctrl-C or an
        interrupt (:func:`pydnn2.launcher.train_in_processes`).
        """
        if force_init:
            self.init_model(overwrite=True)
        args = (updater, epochs, final_epochs, l1_reg, l2_reg)
        try:
            if devices is None:
                history = training.train(self, *args, **options)
            else:
                history = launcher.train_in_processes(self, devices, *args, **options)
        except (ConfigError, DataError, FileFormatError):
            raise                       # refused before any weight changed
        except BaseException:
            self._initialized = True
            raise
        self._initialized = True
        return history

    def lr_find(self, updater: LearningRule | None = None, start_lr: float = 1e-6,
                end_lr: float = 1.0, num_steps: int = 100, **options: Any) -> LRFindResult:
        """Sweep the learning rate from ``start_lr`` to ``end_lr`` over ``num_steps``
        batches and suggest one; the net, its rule and every random generator are
        left exactly as they were. Returns an
        :class:`~pydnn2.train.lr_find.LRFindResult` (``suggestion``, ``rates``,
        ``losses``, ``plot()``); see :func:`pydnn2.train.lr_find.lr_find`."""
        return lr_find(self, updater, start_lr, end_lr, num_steps, **options)

    @overload
    def predict(self, data: Any, *, callback: None = None,
                **options: Any) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def predict(self, data: Any, *, callback: Callable[[np.ndarray, np.ndarray], Any],
                **options: Any) -> None: ...

    def predict(self, data: Any, **options: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """Predict classes: returns ``(classes, probabilities)`` as numpy arrays.

        ``data`` is raw input as the preprocessor's ``preprocess`` accepts it
        (for :class:`~pydnn2.preprocess.ArrayPreprocessor`, an array of rows), or
        a torch ``Dataset`` or ``DataLoader``; see :func:`pydnn2.evaluate.predict`
        for the options (``shard=True`` shares the rows out under torchrun;
        ``callback`` takes each batch's predictions, and ``predict`` returns None).
        """
        return evaluate.predict(self, data, **options)

    def evaluate(self, data: Any, metric: Any, **options: Any) -> Any:
        """Evaluate a metric, or a list of them, on labelled data (neon's ``eval``).

        ``data`` is 'train', 'valid' or 'test' (the preprocessor's sets), an
        ``(x, classes)`` pair of raw input and true classes, or a torch ``Dataset``
        or ``DataLoader`` of ``(x, y)`` items; metrics come from
        :mod:`pydnn2.evaluate.metrics` (``Accuracy()``, ``LogLoss()``,
        ``PrecisionRecall(num_classes)``, ...). Returns the metric's result, or
        a list of results for a list; see :func:`pydnn2.evaluate.evaluate`.
        """
        return evaluate.evaluate(self, data, metric, **options)

    def eval(self, data: Any, metric: Any, **options: Any) -> Any:
        """Deprecated since pydnn2 0.2 (goes in 0.4): :meth:`evaluate`, which takes the
        same arguments; warns with a :class:`DeprecationWarning`."""
        warnings.warn('NN.eval is deprecated since pydnn2 0.2 and goes in 0.4: use '
                      'NN.evaluate (the same arguments)', DeprecationWarning, stacklevel=2)
        return self.evaluate(data, metric, **options)

    def get_outputs(self, data: Any, **options: Any) -> np.ndarray:
        """The final layer's output for every row: the softmax probabilities as a
        float32 numpy array ``(N, num_classes)``. ``data`` is 'train', 'valid',
        'test' or raw input as for :meth:`predict`; see
        :func:`pydnn2.evaluate.get_outputs`."""
        return evaluate.get_outputs(self, data, **options)

    def make_confusion_matrix(self, data: Any, classes: Any, files: Any,
                              **options: Any) -> tuple[np.ndarray, list]:
        """Return ``(matrix, mistakes)``: rows are actual classes, columns
        predicted; mistakes are ``(file_index, actual, predicted)``; see
        :func:`pydnn2.evaluate.make_confusion_matrix`."""
        return evaluate.make_confusion_matrix(self, data, classes, files, **options)

    def get_confusion_matrices(self, **options: Any) -> Any:
        """:meth:`make_confusion_matrix` on the training, validation and test sets; see
        :func:`pydnn2.evaluate.get_confusion_matrices` (``shard=True`` under torchrun)."""
        return evaluate.get_confusion_matrices(self, **options)

    def interpret(self, data: Any = 'valid', class_names: list[str] | None = None,
                  top: int = 20, **options: Any) -> Interpretation:
        """What the net gets wrong on a labelled set ('train', 'valid', 'test' or an
        ``(x, classes)`` pair): per-class counts, precision and recall, share of the
        data against share of the errors, the most confused pairs and the top
        losses, as an :class:`~pydnn2.evaluate.interpret.Interpretation`; see
        :func:`pydnn2.evaluate.interpret.interpret`."""
        return evaluate.interpret(self, data, class_names, top, **options)


def load(filename: str | os.PathLike, device: str | torch.device | None = None) -> NN:
    """Load a net saved by :func:`~pydnn2.files.save` (or a best/final net written by
    ``train``).

    Never executes code from the file. Raises
    :class:`~pydnn2.errors.FileFormatError` for missing, truncated, corrupted
    (checksum mismatch), foreign or too-new files. The net's name and
    output folder are kept only when they are a plain name and a relative
    folder without ``..`` (see :func:`pydnn2.files.trusted_location`).
    """
    filename = os.fspath(filename)
    state = files.trusted_location(files.read_file(filename, 'net'), filename)
    return NN.from_state(state, device, filename)


def load_checkpoint(filename: str | os.PathLike, device: str | torch.device | None = None) -> NN:
    """Return the net stored in a checkpoint, for inspection or prediction
    (verified and trusted as by :func:`load`)."""
    filename = os.fspath(filename)
    state = files.read_file(filename, 'checkpoint')
    return NN.from_state(files.trusted_location(state.get('net'), filename), device, filename)
