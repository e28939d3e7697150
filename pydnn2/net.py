"""NN: the network a user builds, trains and predicts with.

The ``add_*`` methods live in :mod:`pydnn2.builder`; this module keeps the
graph they build (nodes, pathways, recorded calls), compiles it into one
``torch.nn.Module`` and hands training, prediction and sizing to their own
modules.
"""

import copy
import html
import numbers
import warnings

import numpy as np
import torch

from . import description
from . import initializers as I
from . import layers as L
from .builder import Pathway, _Builder
from .errors import ConfigError, DataError, FileFormatError, NetBuildError
from .recording import FLOAT, Node, RerunWarning, _user_site  # noqa: F401
from .preprocess import check_batch_size


def default_device():
    """CUDA when available, else the CPU."""
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def seed_from(rng):
    """A 31-bit seed drawn from a numpy RandomState/Generator, or an int itself."""
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return int(rng) % (2 ** 31 - 1)
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(0, 2 ** 31 - 1))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2 ** 31 - 1))
    raise ConfigError('rng must be a numpy.random.RandomState, a numpy.random.Generator or '
                      f'an int seed; received {type(rng).__name__}')


def _describe(node):
    a = node.args
    if node.op == 'input':
        return f"channel {a['channel']!r}"
    if node.op == 'conv_pool':
        pool = '' if a['pool_shape'] == (1, 1) else \
            ', max-pool {}x{}/{}x{}'.format(*a['pool_shape'], *a['pool_stride'])
        return 'conv {}x{} x{}{}'.format(*a['filter_shape'], a['num_filters'], pool)
    if node.op in ('recurrent', 'lstm', 'gru'):
        return f"{node.op} {a['output_size']}" + (
            f" {a['activation']}" if node.op == 'recurrent' else '')
    return {'fc': lambda: f"dense {a['num_units']}", 'bn': lambda: 'batch norm',
            'act': lambda: a['nonlinearity'], 'dropout': lambda: f"dropout {a['rate']}",
            'logistic': lambda: f"logistic {a['num_classes']}",
            'merge': lambda: f"merge ({a['mode']})",
            'pooling': lambda: '{}-pool {}x{}/{}x{}'.format(a['op'], *a['fshape'],
                                                           *a['strides']),
            'deconvolution': lambda: 'deconv {}x{} x{} /{}x{}'.format(
                *a['filter_shape'], a['num_filters'], *a['strides']),
            'lrn': lambda: f"lrn {a['depth']}", 'bias': lambda: 'bias', 'skip': lambda: 'skip',
            'lookup_table': lambda: f"lookup {a['vocab_size']} -> {a['embedding_dim']}",
            'recurrent_sum': lambda: 'sum over time',
            'recurrent_mean': lambda: 'mean over time',
            'recurrent_last': lambda: 'last time step'}[node.op]()


class NN(_Builder):
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
        Stem of the files written during training.
    output_dir : str
        Folder for those files ('' is the working directory).
    device : str or torch.device, optional
        Where to train; CUDA if available, else the CPU.
    verbose : bool
        Print each call's ``in_shape -> out_shape`` as it is added.

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

    def __init__(self, preprocessor, channel, num_classes, batch_size, rng,
                 activation=L.relu, name='net', output_dir='', *, device=None,
                 verbose=True):
        if not hasattr(preprocessor, 'shape_for'):
            raise ConfigError('preprocessor must implement the preprocessor protocol '
                              '(e.g. pydnn2.preprocess.ArrayPreprocessor); received '
                              f'{type(preprocessor).__name__}')
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
                or num_classes < 2:
            raise ConfigError(f'num_classes must be an integer >= 2; received {num_classes!r}')
        check_batch_size(batch_size)
        if not isinstance(name, str) or not name:
            raise ConfigError(f'name must be a non-empty string; received {name!r}')
        self.preprocessor = preprocessor
        self.channel = channel
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.rng = rng
        self.activation_name = L.activation_name(activation)
        self.name = name
        self.output_dir = output_dir
        self.verbose = verbose
        self.device = torch.device(device) if device is not None else default_device()
        self.seed = seed_from(rng)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._net, self._pid = self, 0
        self.module = L.GraphModule().to(self.device)
        self._calls, self._sites, self._reusable = [], {}, {}
        self._initialized = False      # see the initialized property
        self._reset_graph()
        preprocessor.to(self.device)
        self._check_data()

    def _check_data(self):
        pre = self.preprocessor
        if not (hasattr(pre, 'has_data') and pre.has_data()):
            return
        ys = pre.get_raw_y()
        for set_name, y in zip(('training', 'validation', 'test'), ys):
            y = np.asarray(y)
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(f'labels outside num_classes: the {set_name} set has class '
                                f'{int(y.max() if y.max() >= self.num_classes else y.min())} '
                                f'but num_classes is {self.num_classes} (valid: 0 .. '
                                f'{self.num_classes - 1})')
        if len(ys[0]) < self.batch_size:
            raise DataError(f'batch_size {self.batch_size} is larger than the training set '
                            f'({len(ys[0])} rows); use a smaller batch_size')

    def _reset_graph(self):
        self._nodes = []
        self._pathways = {}
        self._handles = {}
        self._depth, self._call_name = 0, 'NN'
        for key in list(self.module.layers):
            del self.module.layers[key]
        self._new_pathway(None, 'NN')
        self._append(self, 'input', dict(channel=self.channel), None,
                     tuple(self.preprocessor.shape_for(self.channel)))
        self._refresh()

    # -- graph bookkeeping used by the builder ------------------------------------------

    def _new_pathway(self, tip, origin):
        pid = len(self._pathways)
        self._pathways[pid] = {'tip': tip, 'merged_into': None, 'origin': origin}
        reused = self._reusable.get(pid)
        self._handles[pid] = self if pid == 0 else reused or Pathway(self, pid)
        return pid

    def _channel_dtype(self, channel):
        """What a channel's rows hold: integer tokens (``'int64'``) or values."""
        dtype_for = getattr(self.preprocessor, 'dtype_for', None)
        return dtype_for(channel) if dtype_for is not None else FLOAT

    def _append(self, builder, op, args, module, out_shape, inputs=None, dtype=None):
        pathway = self._pathways[builder._pid]
        if inputs is None:
            inputs = () if op == 'input' else (pathway['tip'],)
        if dtype is None:
            dtype = self._channel_dtype(args['channel']) if op == 'input' else FLOAT
        node = Node(len(self._nodes), op, args, tuple(inputs), tuple(out_shape),
                    self._call_name, builder._pid, dtype)
        self._nodes.append(node)
        if module is not None:
            self.module.layers[node.key] = module.to(self.device)
        pathway['tip'] = node.id
        return node

    def _snapshot(self):
        return len(self._nodes), copy.deepcopy(self._pathways)

    def _restore(self, snapshot):
        count, pathways = snapshot
        for node in self._nodes[count:]:
            if node.key in self.module.layers:
                del self.module.layers[node.key]
        del self._nodes[count:]
        self._pathways = pathways
        self._handles = {pid: h for pid, h in self._handles.items() if pid in pathways}

    def _record(self, call, snapshot):
        call['first_node'] = snapshot[0]
        site = _user_site()
        if site is not None:
            key = site[:2]
            if key in self._sites and self._sites[key] is not site[2]:
                warnings.warn(
                    f'{call["method"]} at {key[0]}:{key[1]} already added layers to net '
                    f'{self.name!r} in an earlier run (a re-run notebook cell?); they are now '
                    'there twice. Call net.undo() to remove the last addition.',
                    RerunWarning, stacklevel=3)
            self._sites[key] = site[2]
            call['site'] = key
        self._calls.append(call)
        self._refresh()
        if self.verbose:
            new = self._nodes[snapshot[0]:]
            if new:
                before = ([self._nodes[i].out_shape for i in new[0].inputs] or ['data'])
                print(f'{call["method"]}: {" + ".join(map(str, before))} -> '
                      f'{new[-1].out_shape}')

    def _refresh(self):
        output = self._pathways[0]['tip']
        needed, stack = set(), [output]
        while stack:
            nid = stack.pop()
            if nid not in needed:
                needed.add(nid)
                stack.extend(self._nodes[nid].inputs)
        plan = [(n.key, n.args['channel'] if n.op == 'input' else None,
                 tuple(self._nodes[i].key for i in n.inputs))
                for n in self._nodes if n.id in needed]
        self.module.set_plan(plan, self._nodes[output].key)

    def _replay(self, calls):
        """Rebuild the graph from recorded calls (used by undo and load)."""
        verbose, self.verbose = self.verbose, False
        self._reusable = dict(self._handles)     # surviving pathways keep their handles
        self._reset_graph()
        self._calls = []
        try:
            for call in calls:
                args = {k: self._unplain(v) for k, v in call['args'].items()}
                getattr(self._handles[call['pathway']], call['method'])(**args)
        finally:
            self.verbose = verbose
            self._reusable = {}

    def _unplain(self, value):
        if isinstance(value, dict) and set(value) == {'pathway'}:
            return self._handles[value['pathway']]
        if I.is_config(value):
            return I.as_initializer(value, 'load', 'initializer')
        if isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                return [self._unplain(v) for v in value]
            return tuple(value)
        return value

    # -- what users call ---------------------------------------------------------------

    @property
    def nodes(self):
        """The graph's nodes (channel inputs, layers, merges), in order added."""
        return list(self._nodes)

    @property
    def calls(self):
        """The recorded builder calls, as plain data."""
        return [{k: v for k, v in c.items() if k in ('pathway', 'method', 'args')}
                for c in self._calls]

    @property
    def output_shape(self):
        """The shape of one row at the end of the main pathway."""
        return self._nodes[self._pathways[0]['tip']].out_shape

    def undo(self):
        """Remove the last builder call (and every layer it added).

        Layers that remain keep their weights. Returns a description of the
        undone call.
        """
        if not self._calls:
            raise NetBuildError('undo: nothing to undo; the net has no layers yet')
        last = self._calls[-1]
        state = {k: v.clone() for k, v in self.module.state_dict().items()}
        loaded = self.module.weights_loaded
        self._replay(self.calls[:-1])
        self._sites = {k: v for k, v in self._sites.items() if k != last.get('site')}
        current = self.module.state_dict()
        self.module.load_state_dict({k: state[k] if k in state and state[k].shape == v.shape
                                     else v for k, v in current.items()})
        self.module.weights_loaded = loaded
        args = ', '.join(f'{k}={v!r}' for k, v in last['args'].items())
        return f'{last["method"]}({args})'

    def check_complete(self):
        """Raise :class:`NetBuildError` unless the net can be trained."""
        if self._nodes[self._pathways[0]['tip']].op != 'logistic':
            raise NetBuildError('the net has no output layer: finish it with add_logistic() '
                                '(or add_mlp) before training or predicting')
        open_ = [pid for pid, p in self._pathways.items()
                 if pid != 0 and p['merged_into'] is None]
        if open_:
            raise NetBuildError(f'pathways {open_} were never merged into the net; merge them '
                                'with merge_pathways() or undo their creation')

    def layer_table(self):
        """One dict per node: index, call, layer, in/out shapes, parameters, pathway."""
        rows = []
        for node in self._nodes:
            module = self.module.layers[node.key] if node.key in self.module.layers else None
            params = sum(p.numel() for p in module.parameters()) if module is not None else 0
            rows.append({'index': node.id, 'call': node.call, 'layer': _describe(node),
                         'in_shape': [self._nodes[i].out_shape for i in node.inputs],
                         'out_shape': node.out_shape, 'params': params,
                         'pathway': node.pathway})
        return rows

    def _table_lines(self):
        head = ('#', 'pathway', 'call', 'layer', 'in -> out', 'params')
        lines = [head]
        for r in self.layer_table():
            shapes = ' + '.join(map(str, r['in_shape'])) or '-'
            lines.append((str(r['index']), str(r['pathway']), r['call'], r['layer'],
                          f'{shapes} -> {r["out_shape"]}', f'{r["params"]:,}'))
        return lines

    def __repr__(self):
        lines = self._table_lines()
        widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
        body = '\n'.join('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                         for row in lines)
        total = sum(r['params'] for r in self.layer_table())
        return (f'NN {self.name!r}: {self.num_classes} classes, batch {self.batch_size}, '
                f'on {self.device}\n{body}\ntotal parameters: {total:,}')

    def _repr_html_(self):
        lines = self._table_lines()
        cell = lambda tag, v: f'<{tag}>{html.escape(v)}</{tag}>'  # noqa: E731
        rows = [''.join(cell('th', v) for v in lines[0])]
        rows += [''.join(cell('td', v) for v in row) for row in lines[1:]]
        body = ''.join(f'<tr>{r}</tr>' for r in rows)
        return (f'<p>NN <b>{html.escape(self.name)}</b>: {self.num_classes} classes, '
                f'batch {self.batch_size}, on {self.device}</p><table>{body}</table>')

    @property
    def layers(self):
        """One :class:`~pydnn2.description.Layer` per node, for inspection.

        ``net.layers[i]`` is node ``i`` of ``repr(net)`` (node 0 is the main
        channel): ``.type``, ``.config``, ``.out_shape``, ``.module``, and its
        parameters by short name in ``.params``, with ``.W`` and ``.b``.

        >>> net.layers[1].W.shape                            # doctest: +SKIP
        torch.Size([32, 1, 3, 3])
        """
        return [description.Layer(self, node) for node in self._nodes]

    def get_description(self, get_weights=False):
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

    @property
    def initialized(self):
        """Whether the weights are no longer the builder's first draw.

        False while every weight is as its ``add_*`` call drew it; True once
        the net has been trained, loaded, given weights by :meth:`set_params`
        or initialised by :meth:`init_model`.
        """
        return self._initialized or self.module.weights_loaded

    def init_model(self, initializer=None, overwrite=False):
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
        initializer : pydnn2.initializers.Initializer, optional
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
        initializer = I.as_initializer(initializer, 'init_model', 'initializer')
        redraw = overwrite or (initializer is not None and not self.initialized)
        if redraw:
            for node in self._nodes:
                if node.key in self.module.layers:
                    L.reset(self.module.layers[node.key], self._generator, initializer)
        self._initialized = True
        return redraw

    def get_params(self):
        """A copy of every weight and buffer (``module.state_dict()`` cloned)."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def set_params(self, params):
        """Load weights and buffers from :meth:`get_params`' dict."""
        self.module.load_state_dict(params)

    def train(self, updater, epochs=200, final_epochs=0, l1_reg=0, l2_reg=0,
              force_init=False, **options):
        """Train the net; see :func:`pydnn2.training.train` for every option.

        Training starts from the weights the net has: it never re-initialises
        them unless ``force_init=True``, which first calls
        ``init_model(overwrite=True)`` (each layer's own initialisers, drawn
        afresh). Returns the history: a dict of lists, one entry per epoch.
        """
        from .training import train
        if force_init:
            self.init_model(overwrite=True)
        try:
            history = train(self, updater, epochs, final_epochs, l1_reg, l2_reg, **options)
        except (ConfigError, DataError, NetBuildError, FileFormatError):
            raise                       # refused before any weight changed
        except BaseException:
            self._initialized = True
            raise
        self._initialized = True
        return history

    def predict(self, data, **options):
        """Predict classes: returns ``(classes, probabilities)`` as numpy arrays.

        ``data`` is raw input as the preprocessor's ``preprocess`` accepts it
        (for :class:`~pydnn2.preprocess.ArrayPreprocessor`, an array of rows).
        """
        from .evaluate import predict
        return predict(self, data, **options)

    def eval(self, data, metric, **options):
        """Evaluate a metric, or a list of them, on labelled data (neon's ``eval``).

        ``data`` is 'train', 'valid' or 'test' (the preprocessor's sets) or an
        ``(x, classes)`` pair of raw input and true classes; metrics come from
        :mod:`pydnn2.metrics` (``Accuracy()``, ``LogLoss()``,
        ``PrecisionRecall(num_classes)``, ...). Returns the metric's result, or
        a list of results for a list; see :func:`pydnn2.evaluate.eval_metric`.
        """
        from .evaluate import eval_metric
        return eval_metric(self, data, metric, **options)

    def get_outputs(self, data, **options):
        """The final layer's output for every row: the softmax probabilities as a
        float32 numpy array ``(N, num_classes)``. ``data`` is 'train', 'valid',
        'test' or raw input as for :meth:`predict`; see
        :func:`pydnn2.evaluate.get_outputs`."""
        from .evaluate import get_outputs
        return get_outputs(self, data, **options)

    def make_confusion_matrix(self, data, classes, files):
        """Return ``(matrix, mistakes)``: rows are actual classes, columns
        predicted; mistakes are ``(file_index, actual, predicted)``."""
        from .evaluate import make_confusion_matrix
        return make_confusion_matrix(self, data, classes, files)

    def get_confusion_matrices(self):
        """:meth:`make_confusion_matrix` on the training, validation and test sets."""
        from .evaluate import get_confusion_matrices
        return get_confusion_matrices(self)

    def net_size(self, **options):
        """Cost, parameters and calibrated time estimate of this net; see
        :func:`pydnn2.size.net_size_of`."""
        from .size import net_size_of
        return net_size_of(self, **options)
