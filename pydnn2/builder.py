"""The add_* builder methods, shared by a net and its pathways.

Every ``add_*`` call computes its output shape at once and records itself;
the recorded calls are plain data, so a saved net is rebuilt by replaying
them. Pathways are branches of one graph that compiles into a single
``torch.nn.Module``.

This module holds pydnn's own layers and the pathway calls; neon's wider
set lives in :mod:`pydnn2.builder_maps` (pooling, deconvolution, LRN, bias,
skip) and :mod:`pydnn2.builder_sequences` (lookup tables, recurrent and
summary layers), and what they share in :mod:`pydnn2.recording`.
"""
import math
import numbers

from torch import nn

from . import layers as L
from .builder_maps import MapLayers
from .builder_sequences import SequenceLayers
from .errors import ConfigError, NetBuildError
from .recording import (TOKENS, BuilderBase, Node, RerunWarning, _pair,  # noqa: F401
                        _plain, _positive_int, _user_site, recorded)


class _Builder(MapLayers, SequenceLayers, BuilderBase):
    """The ``add_*`` methods, shared by the main net and its pathways."""

    @recorded
    def add_conv_pool(self, num_filters, filter_shape, pool_shape, pool_stride=None,
                      weight_init=None, use_bias=True, init=None, bias=None):
        """Add a convolution followed by max pooling (no nonlinearity, no batch norm).

        The convolution is 'valid' with stride 1; pooling drops the rows and
        columns that do not fill a pool.

        Parameters
        ----------
        num_filters : int
            Number of filter maps.
        filter_shape : tuple
            (height, width) of the filters.
        pool_shape : tuple
            (height, width) of the pools; (1, 1) for no pooling.
        pool_stride : tuple, optional
            Distance between pools; defaults to ``pool_shape`` (no overlap).
        weight_init : function, optional
            The activation that will follow (relu, tanh, sigmoid or prelu),
            choosing the initialisation; defaults to the net's activation.
        use_bias : bool
            False when batch normalisation follows.
        init : pydnn2.initializers.Initializer, optional
            Initialises the filters instead (e.g. ``Gaussian(scale=0.01)``).
        bias : pydnn2.initializers.Initializer, optional
            Initialises the biases (default: zeros).
        """
        call = self._net._call_name
        c, h, w = self._in_shape(3, '(C, H, W)')
        num_filters = _positive_int(call, 'num_filters', num_filters)
        fh, fw = _pair(call, 'filter_shape', filter_shape)
        ph, pw = _pair(call, 'pool_shape', pool_shape)
        sh, sw = _pair(call, 'pool_stride', pool_shape if pool_stride is None else pool_stride)
        if fh > h or fw > w:
            raise NetBuildError(f'{call}: a {fh}x{fw} filter does not fit the input '
                                f'{(c, h, w)}; use filters of at most {h}x{w}')
        ch, cw = h - fh + 1, w - fw + 1
        if ph > ch or pw > cw:
            raise NetBuildError(f'{call}: a {ph}x{pw} pool does not fit the {ch}x{cw} maps '
                                f'the {fh}x{fw} filter leaves of input {(c, h, w)}')
        out = (num_filters, (ch - ph) // sh + 1, (cw - pw) // sw + 1)
        default = self._activation(weight_init, 'weight_init')
        init, bias = self._initializer(init, 'init'), self._bias_init(bias, use_bias)
        module = L.ConvPool(c, num_filters, (fh, fw), (ph, pw), (sh, sw), bool(use_bias))
        fans = c * fh * fw, num_filters * fh * fw
        self._initialise(module, self._weight_and_bias('conv.', init, bias, fans, default,
                                                       use_bias))
        args = dict(num_filters=num_filters, filter_shape=(fh, fw), pool_shape=(ph, pw),
                    pool_stride=(sh, sw), use_bias=bool(use_bias), init=_plain(init),
                    bias=_plain(bias))
        self._net._append(self, 'conv_pool', args, module, out)

    @recorded
    def add_convolution(self, num_filters, filter_shape, pool_shape, pool_stride=None,
                        activation=None, batch_normalize=True, init=None, bias=None):
        """Add convolution + pooling, optional batch normalisation, and a nonlinearity.

        ``init`` / ``bias`` (initialisers) go to the convolution; a bias exists
        only with ``batch_normalize=False`` (batch norm's shift replaces it).

        >>> net.add_convolution(32, (3, 3), (2, 2))          # doctest: +SKIP
        """
        activation = self._activation(activation)
        self._bias_init(bias, not batch_normalize, 'batch_normalize=True')
        self.add_conv_pool(num_filters, filter_shape, pool_shape, pool_stride,
                           weight_init=activation, use_bias=not batch_normalize, init=init,
                           bias=bias)
        if batch_normalize:
            self.add_batch_normalization()
        self.add_nonlinearity(activation)

    @recorded
    def add_fully_connected(self, num_units, weight_init=None, use_bias=True, init=None,
                            bias=None):
        """Add a dense layer (matrix multiply plus bias) over the flattened input.

        Parameters
        ----------
        num_units : int
            Number of neurons.
        weight_init : function, optional
            The activation that will follow, choosing the initialisation.
        use_bias : bool
            False when batch normalisation follows.
        init, bias : pydnn2.initializers.Initializer, optional
            Initialise the weights and the biases instead of the defaults
            (by ``weight_init``; zeros).

        After a sequence layer ``(T, F)`` without a summary layer, every unit
        connects to every time step (the input is flattened to ``T * F``).
        """
        call = self._net._call_name
        num_units = _positive_int(call, 'num_units', num_units)
        n_in = math.prod(self._in_shape())
        default = self._activation(weight_init, 'weight_init')
        init, bias = self._initializer(init, 'init'), self._bias_init(bias, use_bias)
        module = L.FullyConnected(n_in, num_units, bias=bool(use_bias))
        plan = self._weight_and_bias('', init, bias, (n_in, num_units), default, use_bias)
        self._initialise(module, plan)
        self._net._append(self, 'fc', dict(num_units=num_units, use_bias=bool(use_bias),
                                           init=_plain(init), bias=_plain(bias)),
                          module, (num_units,))

    @recorded
    def add_hidden(self, num_units, activation=None, batch_normalize=True, init=None,
                   bias=None):
        """Add a dense layer, optional batch normalisation, and a nonlinearity.

        ``init`` / ``bias`` (initialisers) go to the dense layer; a bias exists
        only with ``batch_normalize=False``.
        """
        activation = self._activation(activation)
        self._bias_init(bias, not batch_normalize, 'batch_normalize=True')
        self.add_fully_connected(num_units, weight_init=activation,
                                 use_bias=not batch_normalize, init=init, bias=bias)
        if batch_normalize:
            self.add_batch_normalization()
        self.add_nonlinearity(activation)

    @recorded
    def add_nonlinearity(self, nonlinearity):
        """Add an activation layer: relu, tanh, sigmoid, or prelu (learned slopes)."""
        name = L.activation_name(nonlinearity, 'nonlinearity')
        shape = self._in_shape()
        if name == 'prelu' and len(shape) == 2:
            module = L.SequencePReLU(num_parameters=shape[1], init=0.25)
        elif name == 'prelu':
            module = L.PReLU(num_parameters=shape[0], init=0.25)
        else:
            module = L.Nonlinearity(name)
        self._net._append(self, 'act', dict(nonlinearity=name), module, shape)

    @recorded
    def add_dropout(self, rate=0.5):
        """Add dropout: zero inputs with probability ``rate`` while training.

        Outside training the layer passes its input unchanged (survivors are
        scaled by ``1 / (1 - rate)`` during training, which keeps the same
        expected signal as pydnn's scaling at inference).
        """
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ConfigError(f'{self._net._call_name}: rate must be in [0, 1); '
                              f'received {rate!r}')
        self._net._append(self, 'dropout', dict(rate=float(rate)), nn.Dropout(float(rate)),
                          self._in_shape())

    @recorded
    def add_batch_normalization(self, epsilon=1e-6):
        """Add batch normalisation (per channel for maps, per feature for vectors
        and for sequences ``(T, F)``, whose statistics span batch and time).

        In training it uses the batch's statistics; outside training the
        running averages, so a row's prediction never depends on the rest of
        its batch.
        """
        if not isinstance(epsilon, numbers.Real) or not epsilon > 0:
            raise ConfigError(f'{self._net._call_name}: epsilon must be > 0; '
                              f'received {epsilon!r}')
        shape = self._in_shape()
        if len(shape) == 3:
            module = nn.BatchNorm2d(shape[0], eps=float(epsilon))
        elif len(shape) == 1:
            module = nn.BatchNorm1d(shape[0], eps=float(epsilon))
        elif len(shape) == 2:
            module = L.SequenceBatchNorm(shape[1], eps=float(epsilon))
        else:
            raise NetBuildError(f'{self._net._call_name} needs a (C, H, W), (T, F) or (N,) '
                                f'input; got {shape} from {self._tip().call}')
        self._net._append(self, 'bn', dict(epsilon=float(epsilon)), module, shape)

    @recorded
    def add_logistic(self, init=None, bias=None):
        """Add the softmax classifier over ``num_classes``: the final layer.

        ``init`` / ``bias`` (initialisers) replace the defaults (Glorot
        uniform weights, zero biases).
        """
        net = self._net
        if self._pid != 0:
            raise NetBuildError('add_logistic belongs on the main pathway; merge this '
                                'pathway into the net first')
        n_in = math.prod(self._in_shape())
        init, bias = self._initializer(init, 'init'), self._initializer(bias, 'bias')
        module = L.FullyConnected(n_in, net.num_classes)
        self._initialise(module, self._weight_and_bias('', init, bias, (n_in, net.num_classes),
                                                       'linear', True))
        net._append(self, 'logistic', dict(num_classes=net.num_classes, init=_plain(init),
                                           bias=_plain(bias)), module, (net.num_classes,))

    @recorded
    def add_mlp(self, num_hidden_units, activation=None):
        """Add a hidden layer and the logistic classifier in one call."""
        self.add_hidden(num_hidden_units, activation)
        self.add_logistic()

    @recorded
    def new_pathway(self, channel):
        """Start a new pathway from a data channel; merge it back later.

        Returns
        -------
        Pathway
            A builder to which layers can be added separately.
        """
        net = self._net
        shape = net.preprocessor.shape_for(channel)
        pid = net._new_pathway(None, f'new_pathway({channel!r})')
        net._append(net._handles[pid], 'input', dict(channel=channel), None, tuple(shape))
        return net._handles[pid]

    @recorded
    def split_pathways(self, num=None):
        """Split pathways off this one, starting from its current layer.

        Returns a single :class:`Pathway` when ``num`` is None, else a list of
        ``num`` new pathways (the original not included).
        """
        net = self._net
        count = 1 if num is None else _positive_int(net._call_name, 'num', num)
        tip = net._pathways[self._pid]['tip']
        new = [net._handles[net._new_pathway(tip, 'split_pathways')] for _ in range(count)]
        return new[0] if num is None else new

    @recorded
    def merge_pathways(self, pathways):
        """Merge one pathway or a list of pathways into this one.

        Feature maps of equal height and width are joined along channels;
        anything else is flattened and concatenated.
        """
        net = self._net
        call = net._call_name
        others = list(pathways) if isinstance(pathways, (list, tuple)) else [pathways]
        if not others:
            raise NetBuildError(f'{call} needs at least one other pathway; received none')
        for other in others:
            if not isinstance(other, _Builder) or other._net is not net:
                raise NetBuildError(f'{call}: expected pathways of this net; received '
                                    f'{other!r}')
            if other is self or other._pid == 0:
                raise NetBuildError(f'{call}: cannot merge pathway {other._pid} into '
                                    f'pathway {self._pid}; merge split pathways into the '
                                    'main one')
            other._check_open(call)
        if len({o._pid for o in others}) != len(others):
            raise NetBuildError(f'{call}: the same pathway was given twice')
        tips = [self._tip()] + [o._tip() for o in others]
        for tip in tips:
            if tip.dtype == TOKENS:
                raise NetBuildError(f'{call}: {self._source(tip)} holds integer tokens '
                                    f'{tip.out_shape}; embed them with add_lookup_table '
                                    'before merging')
        shapes = [t.out_shape for t in tips]
        if all(len(s) == 3 for s in shapes) and len({s[1:] for s in shapes}) == 1:
            mode, out = 'channels', (sum(s[0] for s in shapes),) + shapes[0][1:]
        else:
            mode, out = 'flat', (sum(math.prod(s) for s in shapes),)
        for other in others:
            net._pathways[other._pid]['merged_into'] = self._pid
        net._append(self, 'merge', dict(mode=mode), L.Merge(mode), out,
                    inputs=tuple(t.id for t in tips))

    @recorded
    def merge_data_channel(self, channel):
        """Merge a data channel (e.g. ``'shapes'``) into this pathway as it is."""
        self.merge_pathways(self.new_pathway(channel))


class Pathway(_Builder):
    """A branch of a net, made by ``new_pathway`` or ``split_pathways``.

    It offers the same ``add_*`` methods as the net; its layers belong to the
    net's one module. Merge it back with ``net.merge_pathways(pathway)``.
    """

    def __init__(self, net, pid):
        self._net, self._pid = net, pid

    def __repr__(self):
        tip = self._tip()
        return f'<Pathway {self._pid} of {self._net.name!r}: ends {tip.out_shape} from {tip.call}>'
