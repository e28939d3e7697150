"""Activation functions and the small torch modules the builder assembles.

The activation functions ``relu``, ``tanh``, ``sigmoid`` and ``prelu`` play two
parts, as in pydnn: they work on plain numbers and arrays (``relu(-0.5) == 0``),
and they name a nonlinearity when passed to ``NN`` or an ``add_*`` method,
which also picks the weight initialisation of the layer feeding it (He for
relu/prelu, Glorot for tanh/sigmoid).
"""

import dataclasses

import numpy as np
import torch
from torch import nn

from .errors import ConfigError


def _apply(x, torch_fn, numpy_fn):
    if isinstance(x, torch.Tensor):
        return torch_fn(x)
    out = numpy_fn(np.asarray(x, dtype=np.float64))
    return float(out) if np.ndim(out) == 0 else out


def relu(x):
    """Rectified linear unit: ``x`` if ``x > 0`` else 0.

    Works on numbers, numpy arrays and tensors; pass the function itself as
    ``activation=relu`` to ask for a ReLU layer.

    >>> relu(-0.5), relu(2.0)
    (0.0, 2.0)
    """
    return _apply(x, torch.relu, lambda a: np.maximum(a, 0.0))


def tanh(x):
    """Hyperbolic tangent; pass ``activation=tanh`` for a tanh layer.

    >>> round(tanh(0.5), 6)
    0.462117
    """
    return _apply(x, torch.tanh, np.tanh)


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``; pass ``activation=sigmoid``.

    >>> sigmoid(0.0)
    0.5
    """
    return _apply(x, torch.sigmoid, lambda a: 1.0 / (1.0 + np.exp(-a)))


def prelu():
    """Names a parametric ReLU (learned negative slopes, He et al. 2015).

    Like pydnn's, this function computes nothing: pass it as
    ``activation=prelu`` to add PReLU layers. Avoid l1/l2 penalties with it:
    pydnn2 never applies them to the slopes, as the paper advises.
    """
    return None


ACTIVATIONS = {'relu': relu, 'tanh': tanh, 'sigmoid': sigmoid, 'prelu': prelu}


def activation_name(activation, what='activation'):
    """Return the name ('relu', ...) of an activation given as function or name."""
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return activation
    for name, fn in ACTIVATIONS.items():
        if activation is fn:
            return name
    raise ConfigError(f'unknown {what}: expected one of relu, tanh, sigmoid, prelu '
                      f'(the functions or their names); received {activation!r}')


@dataclasses.dataclass
class ParamInit:
    """How one parameter of a layer is initialised (kept as ``module.init_plan``)."""

    name: str              # the parameter's name in the module, e.g. 'conv.weight'
    init: object           # an Initializer, or None for the default below
    fan_in: int            # inputs feeding one unit
    fan_out: int           # units one input feeds
    default: str = 'zeros'  # without init: 'zeros', an activation name (He/Glorot), or an
    #                         Initializer class name such as 'Orthogonal'
    role: str = 'weight'   # 'weight', 'inner' (recurrent weights) or 'bias'
    chunks: int = 1        # gates stacked along dim 0, each filled on its own


def _default_initializer(default):
    from . import initializers as I

    if default in ('relu', 'prelu'):
        return I.Kaiming()
    if default in ACTIVATIONS or default == 'linear':
        return I.GlorotUniform()
    if default == 'zeros':
        return I.Constant(0.0)
    return getattr(I, default)()


def initialize(module, generator, override=None):
    """Fill the parameters named in ``module.init_plan`` from ``generator``.

    ``override`` (an Initializer) replaces the layer's own initialiser of its
    weights (``role`` 'weight' and 'inner'); biases keep their own.
    """
    for item in getattr(module, 'init_plan', ()):
        init = item.init
        if override is not None and item.role != 'bias':
            init = override
        init = init if init is not None else _default_initializer(item.default)
        tensor = module.get_parameter(item.name)
        for block in tensor.data.chunk(item.chunks, 0):
            init.fill(block, item.fan_in, item.fan_out, generator)


def reset(module, generator, override=None):
    """Initialise a layer's module again: by its ``init_plan`` (see
    :func:`initialize`), else by torch's ``reset_parameters`` (batch norm,
    PReLU); layers without parameters are left alone."""
    if hasattr(module, 'init_plan'):
        initialize(module, generator, override)
    elif hasattr(module, 'reset_parameters'):
        module.reset_parameters()


def init_weight(weight, nonlinearity, generator, fans=None):
    """Fill ``weight`` in place for the ``nonlinearity`` that follows it.

    He (normal, fan-in) for relu/prelu; Glorot (uniform) for tanh, sigmoid and
    the logistic output ('linear'). ``fans`` defaults to ``(in * receptive
    field, out * receptive field)`` of a dense or convolution weight.
    """
    if fans is None:
        receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
        fans = weight[0].numel(), weight.shape[0] * receptive
    _default_initializer(nonlinearity).fill(weight.data, *fans, generator)


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


class Nonlinearity(nn.Module):
    """An elementwise activation by name: relu, tanh or sigmoid."""

    _FUNCTIONS = {'relu': torch.relu, 'tanh': torch.tanh, 'sigmoid': torch.sigmoid}

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.fn = self._FUNCTIONS[name]

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.name


class PReLU(nn.PReLU):
    """Parametric ReLU with one learned slope per channel (or per feature)."""


class SequencePReLU(PReLU):
    """PReLU over sequences ``(B, T, F)``: one learned slope per feature."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # slopes along F


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
    """Concatenate pathways (DESIGN decision 4).

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
    inputs on the module's device and returns the logits ``(B, classes)``.
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

    def forward(self, inputs):
        values = {}
        layers = self.layers
        for key, channel, sources in self._plan:
            if channel is not None:
                values[key] = inputs[channel]
            elif len(sources) == 1:
                values[key] = layers[key](values[sources[0]])
            else:
                values[key] = layers[key](*[values[s] for s in sources])
        return values[self._output]
