"""neon's layer types for sequences: lookup tables, recurrent layers (Elman, LSTM,
GRU) and the summary layers that collapse time.

A sequence row is ``(T, F)``: T time steps of F features; a token row is
``(T,)`` integers, which a lookup table turns into ``(T, E)``. Recurrent
layers keep the time axis, ``(T, F) -> (T, output_size)``; summaries drop it,
``(T, F) -> (F,)``.
"""

from __future__ import annotations

import math

from ...errors import NetBuildError
from .. import modules as M
from ..initializers import ParamInit
from .base import Cost, LayerSpec


class LookupTable(LayerSpec):
    """Embeds integer tokens: ``(T,)`` tokens -> ``(T, embedding_dim)``."""

    op = 'lookup_table'
    accepts = 'tokens'

    def __init__(self, vocab_size, embedding_dim, init=None):
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, init=init)

    def output_shape(self, incoming, call):
        (steps,) = self.expect(incoming, call, 1, '(T,) token')
        self.check(call, 'vocab_size', 'integer', minimum=1)
        self.check(call, 'embedding_dim', 'integer', minimum=1)
        self.check_init(call, 'init')
        return steps, self.args['embedding_dim']

    def make_module(self, incoming):
        return M.LookupTable(self.args['vocab_size'], self.args['embedding_dim'])

    def init_plan(self, incoming):
        a = self.args
        return [ParamInit('weight', a['init'], a['vocab_size'], a['embedding_dim'], 'Gaussian')]

    def describe(self):
        return f"lookup {self.args['vocab_size']} -> {self.args['embedding_dim']}"

    def cost(self, incoming, out_shape):
        return Cost(0, 0)


class Recurrent(LayerSpec):
    """An Elman recurrent layer, ``h_t = activation(W x_t + U h_{t-1} + b)`` from
    ``h_0 = 0``, computed by torch's fused ``nn.RNN`` (tanh or relu)."""

    op = 'recurrent'
    kind: str
    gates: int
    activations: tuple[str, ...]
    kind, gates, activations = 'rnn', 1, ('tanh', 'relu')
    param_names = {'rnn.weight_ih_l0': 'W_input', 'rnn.weight_hh_l0': 'W_recur',
                   'rnn.bias_ih_l0': 'b', 'rnn.bias_hh_l0': 'b_recur'}

    def __init__(self, output_size, activation='tanh', init=None, init_inner=None, bias=None):
        super().__init__(output_size=output_size, activation=activation, init=init,
                         init_inner=init_inner, bias=bias)

    def output_shape(self, incoming, call):
        steps, _ = self.expect(incoming, call, 2, '(T, F) sequence')
        self.check(call, 'output_size', 'integer', minimum=1)
        activation = self.check_activation(call, 'activation')
        if activation not in self.activations:
            raise NetBuildError(f'{call}: activation must be {" or ".join(self.activations)} '
                                f"(torch's fused {self.kind.upper()}); received {activation}")
        if 'gate_activation' in self.args:
            gate = self.check_activation(call, 'gate_activation')
            if gate != 'sigmoid':
                raise NetBuildError(f"{call}: gate_activation must be sigmoid (torch's fused "
                                    f'{self.kind.upper()} computes its gates with it); '
                                    f'received {gate}')
        self.check_init(call, 'init', 'init_inner', 'bias')
        return steps, self.args['output_size']

    def make_module(self, incoming):
        return M.Recurrent(self.kind, incoming[0].shape[1], self.args['output_size'],
                           self.args['activation'])

    def init_plan(self, incoming):
        a, features, units = self.args, incoming[0].shape[1], self.args['output_size']
        inner = a['init_inner'] or a['init']
        return [ParamInit('rnn.weight_ih_l0', a['init'], features, units, 'GlorotUniform',
                          'weight', self.gates),
                ParamInit('rnn.weight_hh_l0', inner, units, units, 'Orthogonal', 'inner',
                          self.gates),
                ParamInit('rnn.bias_ih_l0', a['bias'], features, units, role='bias'),
                ParamInit('rnn.bias_hh_l0', None, units, units, role='bias')]

    def describe(self):
        return f"{self.op} {self.args['output_size']}" + (
            f" {self.args['activation']}" if self.kind == 'rnn' else '')

    def cost(self, incoming, out_shape):
        steps, features = incoming[0].shape
        units = self.args['output_size']
        mults = steps * self.gates * units * (features + units)
        return Cost(mults, mults)

    def activation_bytes(self, incoming, out_shape):
        steps, units = out_shape
        return 4 * steps * units * (self.gates + 2)    # gates, hidden and cell states


class LSTM(Recurrent):
    """A long short-term memory layer (torch's fused ``nn.LSTM``: tanh cells,
    sigmoid gates)."""

    op = 'lstm'
    kind, gates, activations = 'lstm', 4, ('tanh',)

    def __init__(self, output_size, activation='tanh', gate_activation='sigmoid', init=None,
                 init_inner=None, bias=None):
        LayerSpec.__init__(self, output_size=output_size, activation=activation,
                           gate_activation=gate_activation, init=init, init_inner=init_inner,
                           bias=bias)


class GRU(LSTM):
    """A gated recurrent unit layer (torch's fused ``nn.GRU``: tanh candidate,
    sigmoid gates)."""

    op = 'gru'
    kind, gates = 'gru', 3


class RecurrentSum(LayerSpec):
    """Sums a sequence over time: ``(T, F) -> (F,)``."""

    op = 'recurrent_sum'
    mode, text = 'sum', 'sum over time'

    def __init__(self):
        super().__init__()

    def output_shape(self, incoming, call):
        _, features = self.expect(incoming, call, 2, '(T, F) sequence')
        return (features,)

    def make_module(self, incoming):
        return M.RecurrentSummary(self.mode)

    def describe(self):
        return self.text

    def cost(self, incoming, out_shape):
        return Cost(0, math.prod(incoming[0].shape))


class RecurrentMean(RecurrentSum):
    """Averages a sequence over time: ``(T, F) -> (F,)``."""

    op = 'recurrent_mean'
    mode, text = 'mean', 'mean over time'

    def cost(self, incoming, out_shape):
        return Cost(math.prod(out_shape), math.prod(incoming[0].shape))


class RecurrentLast(RecurrentSum):
    """Keeps a sequence's last time step: ``(T, F) -> (F,)``."""

    op = 'recurrent_last'
    mode, text = 'last', 'last time step'

    def cost(self, incoming, out_shape):
        return Cost(0, 0)
