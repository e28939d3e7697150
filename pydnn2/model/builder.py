"""The add_* builder methods, shared by a net and its pathways.

Every ``add_*`` call computes its output shape at once and records itself;
the recorded calls are plain data, so a saved net is rebuilt by replaying
them. Pathways are branches of one graph that compiles into a single
``torch.nn.Module``. Each method makes a layer spec
(:mod:`pydnn2.model.layers`), which checks the arguments and the shapes;
this module holds pydnn's own calls and the pathway calls, and
:mod:`pydnn2.model.builder_neon` neon's wider set.
"""

import copy

from .. import checks
from ..errors import NetBuildError
from .builder_neon import NeonLayers
from .layers import (Activation, BatchNorm, ConvPool, Dense, Dropout, Input, LayerSpec,
                     Logistic, Merge)
from .recording import BuilderBase, recorded


def input_spec(preprocessor, channel):
    """The :class:`~pydnn2.model.layers.Input` spec of a preprocessor's channel."""
    return Input(channel, preprocessor.shape_for(channel), preprocessor.dtype_for(channel))


class Builder(NeonLayers, BuilderBase):
    """The ``add_*`` methods, shared by the main net and its pathways."""

    @recorded
    def add(self, layer):
        """Add any layer spec, such as one of your own layer types.

        ``layer`` is an instance of a :class:`~pydnn2.model.layers.LayerSpec`
        subclass; it is checked against the incoming shape like any
        ``add_*`` call, and saved and loaded by its ``op`` and arguments.

        >>> net.add(Dropout(0.3))                            # doctest: +SKIP
        """
        if not isinstance(layer, LayerSpec):
            raise NetBuildError(f'add needs a layer spec (a pydnn2.model.layers.LayerSpec '
                                f'instance); received {type(layer).__name__}')
        return self._add(copy.deepcopy(layer))

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
        init : pydnn2.model.initializers.Initializer, optional
            Initialises the filters instead (e.g. ``Gaussian(scale=0.01)``).
        bias : pydnn2.model.initializers.Initializer, optional
            Initialises the biases (default: zeros).
        """
        self._add(ConvPool(num_filters, filter_shape, pool_shape, pool_stride, use_bias, init,
                           bias, self._activation(weight_init, 'weight_init')))

    @recorded
    def add_convolution(self, num_filters, filter_shape, pool_shape, pool_stride=None,
                        activation=None, batch_normalize=True, init=None, bias=None):
        """Add convolution + pooling, optional batch normalisation, and a nonlinearity.

        ``init`` / ``bias`` (initialisers) go to the convolution; a bias exists
        only with ``batch_normalize=False`` (batch norm's shift replaces it).

        >>> net.add_convolution(32, (3, 3), (2, 2))          # doctest: +SKIP
        """
        activation = self._activation(activation)
        self._no_bias_with_norm(bias, batch_normalize)
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
        init, bias : pydnn2.model.initializers.Initializer, optional
            Initialise the weights and the biases instead of the defaults
            (by ``weight_init``; zeros).

        After a sequence layer ``(T, F)`` without a summary layer, every unit
        connects to every time step (the input is flattened to ``T * F``).
        """
        self._add(Dense(num_units, use_bias, init, bias,
                        self._activation(weight_init, 'weight_init')))

    @recorded
    def add_hidden(self, num_units, activation=None, batch_normalize=True, init=None,
                   bias=None):
        """Add a dense layer, optional batch normalisation, and a nonlinearity.

        ``init`` / ``bias`` (initialisers) go to the dense layer; a bias exists
        only with ``batch_normalize=False``.
        """
        activation = self._activation(activation)
        self._no_bias_with_norm(bias, batch_normalize)
        self.add_fully_connected(num_units, weight_init=activation,
                                 use_bias=not batch_normalize, init=init, bias=bias)
        if batch_normalize:
            self.add_batch_normalization()
        self.add_nonlinearity(activation)

    @recorded
    def add_nonlinearity(self, nonlinearity):
        """Add an activation layer: relu, tanh, sigmoid, or prelu (learned slopes)."""
        self._add(Activation(nonlinearity))

    @recorded
    def add_dropout(self, rate=0.5):
        """Add dropout: zero inputs with probability ``rate`` while training.

        Outside training the layer passes its input unchanged (survivors are
        scaled by ``1 / (1 - rate)`` during training, which keeps the same
        expected signal as pydnn's scaling at inference).
        """
        self._add(Dropout(rate))

    @recorded
    def add_batch_normalization(self, epsilon=1e-6):
        """Add batch normalisation (per channel for maps, per feature for vectors
        and for sequences ``(T, F)``, whose statistics span batch and time).

        In training it uses the batch's statistics; outside training the
        running averages, so a row's prediction never depends on the rest of
        its batch.
        """
        self._add(BatchNorm(epsilon))

    @recorded
    def add_logistic(self, init=None, bias=None):
        """Add the softmax classifier over ``num_classes``: the final layer.

        ``init`` / ``bias`` (initialisers) replace the defaults (Glorot
        uniform weights, zero biases).
        """
        if self._pid != 0:
            raise NetBuildError('add_logistic belongs on the main pathway; merge this '
                                'pathway into the net first')
        self._add(Logistic(self._net.num_classes, init, bias))

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
        net, graph = self._net, self._graph
        pid = graph.new_pathway(None, f'new_pathway({channel!r})', lambda p: Pathway(net, p))
        graph.add(pid, input_spec(net.preprocessor, channel))
        return graph.handles[pid]

    @recorded
    def split_pathways(self, num=None):
        """Split pathways off this one, starting from its current layer.

        Returns a single :class:`Pathway` when ``num`` is None, else a list of
        ``num`` new pathways (the original not included).
        """
        net, graph = self._net, self._graph
        count = checks.integer(num, 'num', 1, where=graph.current_call, error=NetBuildError,
                               none=True) or 1
        tip = graph.pathways[self._pid].tip
        new = [graph.handles[graph.new_pathway(tip, 'split_pathways', lambda p: Pathway(net, p))]
               for _ in range(count)]
        return new[0] if num is None else new

    @recorded
    def merge_pathways(self, pathways):
        """Merge one pathway or a list of pathways into this one.

        Feature maps of equal height and width are joined along channels;
        anything else is flattened and concatenated.
        """
        call = self._graph.current_call
        others = list(pathways) if isinstance(pathways, (list, tuple)) else [pathways]
        if not others:
            raise NetBuildError(f'{call} needs at least one other pathway; received none')
        for other in others:
            if not isinstance(other, Builder) or other._net is not self._net:
                raise NetBuildError(f'{call}: expected pathways of this net; received '
                                    f'{other!r}')
            if other is self or other._pid == 0:
                raise NetBuildError(f'{call}: cannot merge pathway {other._pid} into '
                                    f'pathway {self._pid}; merge split pathways into the '
                                    'main one')
            other._check_open(call)
        if len({o._pid for o in others}) != len(others):
            raise NetBuildError(f'{call}: the same pathway was given twice')
        self._graph.merge(self._pid, [o._pid for o in others], Merge())

    @recorded
    def merge_data_channel(self, channel):
        """Merge a data channel (e.g. ``'shapes'``) into this pathway as it is."""
        self.merge_pathways(self.new_pathway(channel))


class Pathway(Builder):
    """A branch of a net, made by ``new_pathway`` or ``split_pathways``.

    It offers the same ``add_*`` methods as the net; its layers belong to the
    net's one module. Merge it back with ``net.merge_pathways(pathway)``.
    """

    def __init__(self, net, pid):
        self._net, self._pid = net, pid

    def __repr__(self):
        tip = self._tip()
        return f'<Pathway {self._pid} of {self._net.name!r}: ends {tip.out_shape} from {tip.call}>'
