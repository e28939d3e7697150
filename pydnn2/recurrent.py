"""The torch modules of sequence layers: lookup tables, recurrent and summary layers.

A sequence row is ``(T, F)``: T time steps of F features (a batch is
``(B, T, F)``, time second, as with ``batch_first=True``). Token rows are
``(T,)`` integers, which a :class:`LookupTable` turns into ``(T, E)``.
"""

from torch import nn

#: The torch layer and the number of gates (weight blocks stacked along dim 0) of each kind.
KINDS = {'rnn': (nn.RNN, 1), 'lstm': (nn.LSTM, 4), 'gru': (nn.GRU, 3)}


class LookupTable(nn.Embedding):
    """Embeds integer tokens: ``(B, T)`` int64 -> ``(B, T, embedding_dim)``."""


class Recurrent(nn.Module):
    """One recurrent layer over a batch of sequences, returning every step's output.

    ``kind`` is 'rnn' (Elman: ``h_t = act(W x_t + U h_{t-1} + b)``), 'lstm' or
    'gru', computed by torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
    (sigmoid gates, tanh cells). Each sequence starts from a zero state.
    """

    def __init__(self, kind, input_size, hidden_size, nonlinearity='tanh'):
        super().__init__()
        layer, self.gates = KINDS[kind]
        self.kind = kind
        options = {'nonlinearity': nonlinearity} if kind == 'rnn' else {}
        self.rnn = layer(input_size, hidden_size, batch_first=True, **options)

    def forward(self, x):
        out, _ = self.rnn(x)  # (B, T, F) -> (B, T, H)
        return out

    def extra_repr(self):
        return self.kind


class RecurrentSummary(nn.Module):
    """Collapses the time axis: ``mode`` 'sum', 'mean' or 'last' step.

    ``(B, T, F) -> (B, F)``; no parameters.
    """

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        if self.mode == 'sum':
            return x.sum(1)    # (B, T, F) -> (B, F)
        if self.mode == 'mean':
            return x.mean(1)   # (B, T, F) -> (B, F)
        return x[:, -1]        # (B, T, F) -> (B, F): the last step

    def extra_repr(self):
        return self.mode
