"""The torch modules a net is made of, and the module that runs them all.

Each layer spec (:mod:`pydnn2.model.layers`) makes one of these, or a plain
``torch.nn`` module; :class:`GraphModule` holds them in a ``ModuleDict`` and
runs them in the order the builder recorded. Nothing here knows about the
builder: the modules are plain PyTorch, usable anywhere PyTorch is.

Sequence rows are ``(T, F)``: a batch is ``(B, T, F)``, time second, as with
``batch_first=True``; token rows are ``(T,)`` integers.

:func:`module_lock` is the lock that training steps and inference batches of
one module hold, so neither runs in the other's train/eval mode.
"""

from __future__ import annotations

import threading
import weakref

import torch
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


class ConvPool(nn.Module):
    """A 'valid' convolution (stride 1) followed by max pooling (pydnn's conv-pool).

    Pooling drops the rows and columns that do not fill a whole pool, as
    pydnn's did (``net_size`` reports them as "pool loss").
    """

    def __init__(self, in_channels, num_filters, filter_shape, pool_shape, pool_stride,
                 use_bias=True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_filters, filter_shape, bias=use_bias)
        self.pool = (nn.MaxPool2d(pool_shape, pool_stride)
                     if tuple(pool_shape) != (1, 1) or tuple(pool_stride) != (1, 1)
                     else nn.Identity())

    def forward(self, x):
        return self.pool(self.conv(x))  # (B, C, H, W) -> (B, F, H', W')


class FullyConnected(nn.Linear):
    """A matrix multiply (plus bias) over the flattened input."""

    def forward(self, x):
        return super().forward(x.flatten(1))  # (B, ...) -> (B, units)


class SequenceBatchNorm(nn.BatchNorm1d):
    """Batch normalisation of sequences ``(B, T, F)`` per feature, over batch and time."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, F, T) inside


class Bias(nn.Module):
    """A learned bias: one per channel of maps ``(B, C, H, W)``, one per feature
    of vectors ``(B, F)`` and of sequences ``(B, T, F)``."""

    def __init__(self, num, maps):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num))
        self.maps = maps

    def forward(self, x):
        if self.maps:
            return x + self.bias.view(-1, 1, 1)  # (B, C, H, W) + (C, 1, 1)
        return x + self.bias  # (B, ..., F) + (F,)


class Deconvolution(nn.ConvTranspose2d):
    """Transposed convolution: ``(B, C, H, W) -> (B, F, (H-1)*s - 2p + k, ...)``."""


class Merge(nn.Module):
    """Concatenate pathways.

    ``mode='channels'`` joins feature maps of equal height and width along
    the channel axis; ``mode='flat'`` flattens every input first.
    """

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, *xs):
        if self.mode == 'channels':
            return torch.cat(xs, 1)  # (B, C1, H, W) + (B, C2, H, W) -> (B, C1+C2, H, W)
        return torch.cat([x.flatten(1) for x in xs], 1)  # (B, ...) + (B, k) -> (B, n + k)


class GraphModule(nn.Module):
    """The compiled network: layers in a ModuleDict, run in recorded order.

    ``forward`` takes a dict ``{channel: tensor (B, ...)}`` of preprocessed
    inputs on the module's device and returns the logits ``(B, classes)``;
    float inputs of another precision than the weights are converted.
    The builder (``NN``) adds and removes layers; users may run the module
    anywhere plain PyTorch is used.
    """

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict()
        self._plan = []        # [(key, channel or None, input keys)] in execution order
        self._output = None
        self.weights_loaded = False

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """``nn.Module.load_state_dict``, noting that the weights now come from
        elsewhere (a file, a checkpoint, ``set_params``): see ``NN.initialized``."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.weights_loaded = True
        return result

    def set_plan(self, plan, output):
        """Set the execution order (called by the builder after each change)."""
        self._plan = list(plan)
        self._output = output

    def _entering(self, value):
        """A channel's values in the precision of the weights (tokens stay integers)."""
        if not value.is_floating_point():
            return value
        weight = next(self.parameters(), None)
        return value if weight is None or weight.dtype == value.dtype else value.to(weight.dtype)

    def forward(self, inputs):
        values = {}
        layers = self.layers
        for key, channel, sources in self._plan:
            if channel is not None:
                values[key] = self._entering(inputs[channel])
            elif len(sources) == 1:
                values[key] = layers[key](values[sources[0]])
            else:
                values[key] = layers[key](*[values[s] for s in sources])
        return values[self._output]


# module -> its RLock (kept off the module, which could then no longer be deep-copied)
_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def module_lock(module):
    """The re-entrant lock of ``module``.

    A training step holds it, and so does every inference batch
    (:func:`pydnn2.evaluate.inference_mode_of`) and ``net_size``'s timing: a
    ``predict`` from another thread waits for the step to end instead of
    switching the module to evaluation mode under it.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock
