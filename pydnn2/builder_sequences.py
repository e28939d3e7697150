"""Builder methods for sequences: lookup tables, recurrent layers and summary layers.

A sequence row is ``(T, F)``: T time steps of F features. A channel of
integer tokens ``(T,)`` (see ``ArrayPreprocessor(token_channels=...)``)
becomes a sequence through :meth:`~SequenceLayers.add_lookup_table`.
Recurrent layers keep the time axis, ``(T, F) -> (T, output_size)``; the
summary layers collapse it, ``(T, F) -> (F,)``. A dense layer straight
after a recurrent one connects to every time step (neon's rule).
"""

from . import layers as L
from . import recurrent as R
from .errors import NetBuildError
from .recording import BuilderBase, _plain, _positive_int, recorded


class SequenceLayers(BuilderBase):
    """``add_lookup_table``, ``add_recurrent``, ``add_lstm``, ``add_gru`` and the
    summary layers ``add_recurrent_sum``, ``add_recurrent_mean``, ``add_recurrent_last``."""

    def _channel_of(self, node):
        while node.op != 'input':
            node = self._net._nodes[node.inputs[0]]
        return node.args['channel']

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
        init : pydnn2.initializers.Initializer, optional
            Initialises the table (default: ``Gaussian(0, 1)``).

        >>> net.add_lookup_table(vocab_size=50, embedding_dim=16)   # doctest: +SKIP
        """
        call, net = self._net._call_name, self._net
        (steps,) = self._in_shape(1, '(T,) token', tokens=True)
        vocab_size = _positive_int(call, 'vocab_size', vocab_size)
        embedding_dim = _positive_int(call, 'embedding_dim', embedding_dim)
        channel = self._channel_of(self._tip())
        largest = getattr(net.preprocessor, 'max_token', lambda c: None)(channel)
        if largest is not None and largest >= vocab_size:
            raise NetBuildError(f'{call}: channel {channel!r} holds token {largest} but '
                                f'vocab_size is {vocab_size}; tokens must lie in 0 .. '
                                f'vocab_size - 1 (use vocab_size >= {largest + 1})')
        init = self._initializer(init, 'init')
        module = self._initialise(R.LookupTable(vocab_size, embedding_dim), [
            L.ParamInit('weight', init, vocab_size, embedding_dim, 'Gaussian')])
        net._append(self, 'lookup_table', dict(vocab_size=vocab_size,
                                               embedding_dim=embedding_dim,
                                               init=_plain(init)),
                    module, (steps, embedding_dim))

    def _recurrent(self, kind, output_size, activation, init, init_inner, bias,
                   gate_activation=None):
        call = self._net._call_name
        steps, features = self._in_shape(2, '(T, F) sequence')
        output_size = _positive_int(call, 'output_size', output_size)
        activation = L.activation_name(L.tanh if activation is None else activation)
        allowed = ('tanh', 'relu') if kind == 'rnn' else ('tanh',)
        if activation not in allowed:
            raise NetBuildError(f'{call}: activation must be {" or ".join(allowed)} (torch\'s '
                                f'fused {kind.upper()}); received {activation}')
        args = dict(output_size=output_size, activation=activation)
        if kind != 'rnn':
            gate = L.activation_name(L.sigmoid if gate_activation is None else gate_activation,
                                     'gate_activation')
            if gate != 'sigmoid':
                raise NetBuildError(f'{call}: gate_activation must be sigmoid (torch\'s fused '
                                    f'{kind.upper()} computes its gates with it); received {gate}')
            args['gate_activation'] = gate
        init, bias = self._initializer(init, 'init'), self._initializer(bias, 'bias')
        init_inner = self._initializer(init_inner, 'init_inner')
        module = R.Recurrent(kind, features, output_size, activation)
        gates = module.gates
        self._initialise(module, [
            L.ParamInit('rnn.weight_ih_l0', init, features, output_size, 'GlorotUniform',
                        'weight', gates),
            L.ParamInit('rnn.weight_hh_l0', init_inner or init, output_size, output_size,
                        'Orthogonal', 'inner', gates),
            L.ParamInit('rnn.bias_ih_l0', bias, features, output_size, role='bias'),
            L.ParamInit('rnn.bias_hh_l0', None, output_size, output_size, role='bias')])
        args.update(init=_plain(init), init_inner=_plain(init_inner), bias=_plain(bias))
        self._net._append(self, {'rnn': 'recurrent'}.get(kind, kind), args, module,
                          (steps, output_size))

    @recorded
    def add_recurrent(self, output_size, activation=L.tanh, init=None, init_inner=None,
                      bias=None):
        """Add an Elman recurrent layer: ``(T, F) -> (T, output_size)``.

        ``h_t = activation(W x_t + U h_{t-1} + b)`` from ``h_0 = 0``.

        Parameters
        ----------
        output_size : int
            Number of recurrent units.
        activation : function
            tanh or relu (what torch's fused ``nn.RNN`` offers).
        init : pydnn2.initializers.Initializer, optional
            Initialises the input weights ``W`` (default: ``GlorotUniform()``).
        init_inner : pydnn2.initializers.Initializer, optional
            Initialises the recurrent weights ``U`` (default: ``init`` when
            given, as in neon, else ``Orthogonal()``).
        bias : pydnn2.initializers.Initializer, optional
            Initialises ``b`` (default: zeros).
        """
        self._recurrent('rnn', output_size, activation, init, init_inner, bias)

    @recorded
    def add_lstm(self, output_size, activation=L.tanh, gate_activation=L.sigmoid, init=None,
                 init_inner=None, bias=None):
        """Add a long short-term memory layer: ``(T, F) -> (T, output_size)``.

        Computed by torch's fused ``nn.LSTM``, so ``activation`` must be tanh
        and ``gate_activation`` sigmoid (anything else is refused).
        ``init``, ``init_inner`` and ``bias`` are as for :meth:`add_recurrent`,
        applied to each gate's block of weights.

        >>> net.add_lstm(64)                                 # doctest: +SKIP
        >>> net.add_recurrent_last()                         # doctest: +SKIP
        """
        self._recurrent('lstm', output_size, activation, init, init_inner, bias,
                        gate_activation)

    @recorded
    def add_gru(self, output_size, activation=L.tanh, gate_activation=L.sigmoid, init=None,
                init_inner=None, bias=None):
        """Add a gated recurrent unit layer: ``(T, F) -> (T, output_size)``.

        Computed by torch's fused ``nn.GRU`` (tanh candidate, sigmoid gates);
        arguments as for :meth:`add_lstm`.
        """
        self._recurrent('gru', output_size, activation, init, init_inner, bias,
                        gate_activation)

    def _summary(self, mode):
        steps, features = self._in_shape(2, '(T, F) sequence')
        self._net._append(self, f'recurrent_{mode}', {}, R.RecurrentSummary(mode),
                          (features,))

    @recorded
    def add_recurrent_sum(self):
        """Sum a sequence over time: ``(T, F) -> (F,)``."""
        self._summary('sum')

    @recorded
    def add_recurrent_mean(self):
        """Average a sequence over time: ``(T, F) -> (F,)``."""
        self._summary('mean')

    @recorded
    def add_recurrent_last(self):
        """Keep a sequence's last time step only: ``(T, F) -> (F,)``."""
        self._summary('last')
