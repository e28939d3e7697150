"""neon's wider layer set as builder methods: pooling, deconvolution, local response
normalisation, bias and skip for feature maps; lookup tables, recurrent layers
and summaries for sequences.

A sequence row is ``(T, F)``: T time steps of F features. A channel of
integer tokens ``(T,)`` (see ``ArrayPreprocessor(token_channels=...)``)
becomes a sequence through :meth:`~NeonLayers.add_lookup_table`. Recurrent
layers keep the time axis, ``(T, F) -> (T, output_size)``; the summary
layers collapse it, ``(T, F) -> (F,)``. A dense layer straight after a
recurrent one connects to every time step (neon's rule).
"""

from ..errors import NetBuildError
from .activations import sigmoid, tanh
from .layers import (GRU, LRN, LSTM, Bias, Deconvolution, LookupTable, Pooling, Recurrent,
                     RecurrentLast, RecurrentMean, RecurrentSum, Skip)
from .recording import BuilderBase, recorded


class NeonLayers(BuilderBase):
    """``add_pooling``, ``add_deconvolution``, ``add_lrn``, ``add_bias``, ``add_skip``,
    ``add_lookup_table``, ``add_recurrent``, ``add_lstm``, ``add_gru`` and the summary
    layers ``add_recurrent_sum``, ``add_recurrent_mean``, ``add_recurrent_last``."""

    @recorded
    def add_pooling(self, fshape, op='max', strides=None, padding=0):
        """Add max or average pooling over each feature map.

        Output height is ``(H + 2 * padding - fshape) // strides + 1`` (and
        likewise the width); rows and columns that do not fill a window are
        dropped. Average pooling divides by the number of real (unpadded)
        values in each window.

        Parameters
        ----------
        fshape : int or tuple
            (height, width) of the window.
        op : str
            'max' or 'avg'.
        strides : int or tuple, optional
            Distance between windows; defaults to ``fshape`` (no overlap).
        padding : int or tuple
            Rows/columns added on each side; at most half the window.

        >>> net.add_pooling(2, op='avg')                    # doctest: +SKIP
        """
        self._add(Pooling(fshape, op, strides, padding))

    @recorded
    def add_deconvolution(self, num_filters, filter_shape, strides=1, padding=0,
                          use_bias=True, init=None, bias=None):
        """Add a transposed convolution ("deconvolution"), which enlarges maps.

        Output height is ``(H - 1) * strides - 2 * padding + filter height``
        (and likewise the width). Add a nonlinearity after it yourself.

        Parameters
        ----------
        num_filters : int
            Number of output maps.
        filter_shape : int or tuple
            (height, width) of the filters.
        strides, padding : int or tuple
            As for the convolution this one transposes.
        use_bias : bool
            False when batch normalisation follows.
        init, bias : pydnn2.model.initializers.Initializer, optional
            Initialise the filters (default: by the net's activation, with
            ``fan_in = C * height * width``) and the biases (default: zeros).
        """
        self._add(Deconvolution(num_filters, filter_shape, strides, padding, use_bias, init,
                                bias, self._net.activation_name))

    @recorded
    def add_lrn(self, depth=5, alpha=1e-4, beta=0.75, k=1.0):
        """Add local response normalisation across channels (Krizhevsky et al. 2012).

        Each value is divided by ``(k + alpha / depth * s) ** beta``, where
        ``s`` sums the squares of the same position in the ``depth``
        neighbouring channels (``torch.nn.LocalResponseNorm``).
        """
        self._add(LRN(depth, alpha, beta, k))

    @recorded
    def add_bias(self, init=None):
        """Add a learned bias: one per channel of maps, one per feature of
        vectors and sequences. ``init`` defaults to zeros."""
        self._add(Bias(init))

    @recorded
    def add_skip(self):
        """Add a layer that passes its input through unchanged (neon's SkipNode)."""
        self._add(Skip())

    @recorded
    def add_lookup_table(self, vocab_size, embedding_dim, init=None):
        """Embed integer tokens: ``(T,)`` tokens -> ``(T, embedding_dim)``.

        Parameters
        ----------
        vocab_size : int
            Number of distinct tokens; tokens must lie in ``0 .. vocab_size - 1``
            (checked against the data the preprocessor holds).
        embedding_dim : int
            Features per token.
        init : pydnn2.model.initializers.Initializer, optional
            Initialises the table (default: ``Gaussian(0, 1)``).

        >>> net.add_lookup_table(vocab_size=50, embedding_dim=16)   # doctest: +SKIP
        """
        node = self._add(LookupTable(vocab_size, embedding_dim, init))
        channel = self._graph.channel_of(node)
        largest = self._net.preprocessor.max_token(channel)
        vocab_size = node.args['vocab_size']
        if largest is not None and largest >= vocab_size:
            raise NetBuildError(f'{node.call}: channel {channel!r} holds token {largest} but '
                                f'vocab_size is {vocab_size}; tokens must lie in 0 .. '
                                f'vocab_size - 1 (use vocab_size >= {largest + 1})')

    @recorded
    def add_recurrent(self, output_size, activation=tanh, init=None, init_inner=None,
                      bias=None):
        """Add an Elman recurrent layer: ``(T, F) -> (T, output_size)``.

        ``h_t = activation(W x_t + U h_{t-1} + b)`` from ``h_0 = 0``.

        Parameters
        ----------
        output_size : int
            Number of recurrent units.
        activation : function
            tanh or relu (what torch's fused ``nn.RNN`` offers).
        init : pydnn2.model.initializers.Initializer, optional
            Initialises the input weights ``W`` (default: ``GlorotUniform()``).
        init_inner : pydnn2.model.initializers.Initializer, optional
            Initialises the recurrent weights ``U`` (default: ``init`` when
            given, as in neon, else ``Orthogonal()``).
        bias : pydnn2.model.initializers.Initializer, optional
            Initialises ``b`` (default: zeros).
        """
        self._add(Recurrent(output_size, activation, init, init_inner, bias))

    @recorded
    def add_lstm(self, output_size, activation=tanh, gate_activation=sigmoid, init=None,
                 init_inner=None, bias=None):
        """Add a long short-term memory layer: ``(T, F) -> (T, output_size)``.

        Computed by torch's fused ``nn.LSTM``, so ``activation`` must be tanh
        and ``gate_activation`` sigmoid (anything else is refused).
        ``init``, ``init_inner`` and ``bias`` are as for :meth:`add_recurrent`,
        applied to each gate's block of weights.

        >>> net.add_lstm(64)                                 # doctest: +SKIP
        >>> net.add_recurrent_last()                         # doctest: +SKIP
        """
        self._add(LSTM(output_size, activation, gate_activation, init, init_inner, bias))

    @recorded
    def add_gru(self, output_size, activation=tanh, gate_activation=sigmoid, init=None,
                init_inner=None, bias=None):
        """Add a gated recurrent unit layer: ``(T, F) -> (T, output_size)``.

        Computed by torch's fused ``nn.GRU`` (tanh candidate, sigmoid gates);
        arguments as for :meth:`add_lstm`.
        """
        self._add(GRU(output_size, activation, gate_activation, init, init_inner, bias))

    @recorded
    def add_recurrent_sum(self):
        """Sum a sequence over time: ``(T, F) -> (F,)``."""
        self._add(RecurrentSum())

    @recorded
    def add_recurrent_mean(self):
        """Average a sequence over time: ``(T, F) -> (F,)``."""
        self._add(RecurrentMean())

    @recorded
    def add_recurrent_last(self):
        """Keep a sequence's last time step only: ``(T, F) -> (F,)``."""
        self._add(RecurrentLast())
