"""The activation functions relu, tanh, sigmoid and prelu, and their layer.

The functions play two parts, as in pydnn: they work on plain numbers and
arrays (``relu(-0.5) == 0``), and they name a nonlinearity when passed to
``NN`` or an ``add_*`` method, which also picks the weight initialisation of
the layer feeding it (He for relu/prelu, Glorot for tanh/sigmoid).
"""

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError


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
