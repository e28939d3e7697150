"""Weight initialisers, passed per layer as ``init=`` / ``bias=`` (as in neon).

An initialiser fills a tensor in place from the net's random generator,
given the fans of the layer it belongs to (``fan_in``: inputs feeding one
unit; ``fan_out``: units one input feeds). Its configuration is plain data
(:meth:`Initializer.to_config`), so builder calls that carry one are
recorded, saved and replayed like any other argument.

>>> import torch
>>> w = torch.empty(3, 4)
>>> Constant(0.5).fill(w, fan_in=4, fan_out=3, generator=torch.Generator())
>>> float(w.sum())
6.0
>>> Gaussian(scale=0.01).to_config()
{'initializer': 'Gaussian', 'loc': 0.0, 'scale': 0.01}
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .. import checks
from ..errors import ConfigError
from .activations import ACTIVATIONS

_KINDS: dict[str, type] = {}


def _real(owner, name, value):
    return checks.number(value, name, where=owner)


class Initializer:
    """Base class: fills a weight or bias tensor in place.

    Subclasses set their arguments as attributes in ``__init__`` (the names
    of its parameters) and implement :meth:`fill`.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _KINDS[cls.__name__] = cls

    def fill(self, tensor, fan_in, fan_out, generator):
        """Fill ``tensor`` in place (under ``torch.no_grad``)."""
        raise NotImplementedError(f'{type(self).__name__}.fill')

    def to_config(self):
        """The initialiser as plain data: its class name and arguments."""
        return {'initializer': type(self).__name__, **vars(self)}

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({args})'


class Constant(Initializer):
    """Every value ``val`` (neon's ``Constant``); the usual bias initialiser."""

    def __init__(self, val=0.0):
        self.val = _real('Constant', 'val', val)

    def fill(self, tensor, fan_in, fan_out, generator):
        with torch.no_grad():
            tensor.fill_(self.val)


class Gaussian(Initializer):
    """Normal values with mean ``loc`` and standard deviation ``scale``."""

    def __init__(self, loc=0.0, scale=1.0):
        self.loc = _real('Gaussian', 'loc', loc)
        self.scale = checks.number(scale, 'scale', at_least=0, where='Gaussian')

    def fill(self, tensor, fan_in, fan_out, generator):
        with torch.no_grad():
            tensor.normal_(self.loc, self.scale, generator=generator)


class Uniform(Initializer):
    """Values drawn uniformly from ``[low, high)``."""

    def __init__(self, low=0.0, high=1.0):
        self.low = _real('Uniform', 'low', low)
        self.high = _real('Uniform', 'high', high)
        if not self.low <= self.high:
            raise ConfigError(f'Uniform: low must not exceed high; received low={low!r}, '
                              f'high={high!r}')

    def fill(self, tensor, fan_in, fan_out, generator):
        with torch.no_grad():
            tensor.uniform_(self.low, self.high, generator=generator)


class GlorotUniform(Initializer):
    """Uniform in ``±gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010;
    they advise ``gain=4`` before a sigmoid)."""

    def __init__(self, gain=1.0):
        self.gain = _real('GlorotUniform', 'gain', gain)

    def fill(self, tensor, fan_in, fan_out, generator):
        bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            tensor.uniform_(-bound, bound, generator=generator)


class Kaiming(Initializer):
    """Normal with standard deviation ``sqrt(2 / fan_in)`` (He et al. 2015), for relu."""

    def fill(self, tensor, fan_in, fan_out, generator):
        with torch.no_grad():
            tensor.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)


class LeCun(Initializer):
    """Normal with standard deviation ``1 / sqrt(fan_in)`` (LeCun et al. 1998):
    pydnn's weights before relu and prelu."""

    def fill(self, tensor, fan_in, fan_out, generator):
        with torch.no_grad():
            tensor.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014); the
    default ``init_inner`` of recurrent layers, applied to each gate's square
    block of recurrent weights."""

    def __init__(self, gain=1.0):
        self.gain = _real('Orthogonal', 'gain', gain)

    def fill(self, tensor, fan_in, fan_out, generator):
        torch.nn.init.orthogonal_(tensor, gain=self.gain, generator=generator)


def as_initializer(value, owner, name):
    """``value`` as an :class:`Initializer` (or None): accepts an instance or
    its :meth:`~Initializer.to_config` dict."""
    if value is None or isinstance(value, Initializer):
        return value
    if isinstance(value, type) and issubclass(value, Initializer):
        raise ConfigError(f'{owner}: {name} must be an initializer instance; received the '
                          f'class {value.__name__}: call it, {value.__name__}()')
    if isinstance(value, dict) and value.get('initializer') in _KINDS:
        args = {k: v for k, v in value.items() if k != 'initializer'}
        return _KINDS[value['initializer']](**args)
    raise ConfigError(f'{owner}: {name} must be an initializer ({", ".join(sorted(_KINDS))}) '
                      f'or None; received {value!r}')


def is_config(value):
    """Whether ``value`` is the plain-data form of an initialiser."""
    return isinstance(value, dict) and value.get('initializer') in _KINDS


@dataclasses.dataclass
class ParamInit:
    """How one parameter of a layer is initialised (a layer spec's ``init_plan``)."""

    name: str              # the parameter's name in the module, e.g. 'conv.weight'
    init: object           # an Initializer, its config dict, or None for the default below
    fan_in: float          # inputs feeding one unit
    fan_out: float         # units one input feeds (fractional: pydnn's F*h*w / pool area)
    default: str = 'zeros'  # without init: 'zeros', an activation name (He/Glorot), or an
    #                         Initializer class name such as 'Orthogonal'
    role: str = 'weight'   # 'weight', 'inner' (recurrent weights), 'bias' or 'scale'
    chunks: int = 1        # gates stacked along dim 0, each filled on its own


#: The net-wide choices of default initialisation (``NN(..., initialization=...)``).
SCHEMES = ('pydnn', 'he-glorot')


def default_initializer(default, role='weight', scheme='pydnn'):
    """The initialiser a :class:`ParamInit` without ``init`` falls back on.

    ``default`` names the activation the layer feeds ('relu', 'prelu',
    'tanh', 'sigmoid'), 'linear' (the classifier), 'bn_gamma' (batch norm's
    scale), 'zeros', or an initialiser class. Under pydnn's scheme (the
    default): weights before relu/prelu normal with std ``1 / sqrt(fan_in)``
    and their biases 1, Glorot uniform before tanh (times 4 before sigmoid)
    with zero biases, a zero classifier, batch-norm scales uniform in
    [0.95, 1.05]. Under 'he-glorot': He normal before relu/prelu, Glorot
    uniform before tanh, sigmoid and the classifier, zero biases, scales 1.
    """
    pydnn = scheme == 'pydnn'
    if default in ('relu', 'prelu'):
        if role == 'bias':
            return Constant(1.0 if pydnn else 0.0)
        return LeCun() if pydnn else Kaiming()
    if default in ACTIVATIONS or default == 'linear':
        if role == 'bias' or (pydnn and default == 'linear'):
            return Constant(0.0)
        return GlorotUniform(4.0 if pydnn and default == 'sigmoid' else 1.0)
    if default == 'bn_gamma':
        return Uniform(0.95, 1.05) if pydnn else Constant(1.0)
    if default == 'zeros':
        return Constant(0.0)
    return _KINDS[default]()


def initialize(module, plan, generator, override=None, scheme='pydnn'):
    """Fill the parameters of ``module`` named in ``plan`` (a list of
    :class:`ParamInit`) from ``generator``, by ``scheme`` where a parameter has
    no initialiser of its own (see :func:`default_initializer`).

    ``override`` (an Initializer) replaces the layer's own initialiser of its
    weights (``role`` 'weight' and 'inner'); biases and scales keep their own.
    """
    for item in plan:
        init = as_initializer(item.init, 'initialize', item.name)
        if override is not None and item.role in ('weight', 'inner'):
            init = override
        if init is None:
            init = default_initializer(item.default, item.role, scheme)
        tensor = module.get_parameter(item.name)
        for block in tensor.data.chunk(item.chunks, 0):
            init.fill(block, item.fan_in, item.fan_out, generator)


def reset(module, plan, generator, override=None, scheme='pydnn'):
    """Initialise a layer's module again: its running statistics (batch norm),
    then by its ``plan`` (see :func:`initialize`), else by torch's
    ``reset_parameters`` (PReLU); layers without parameters are left alone."""
    if hasattr(module, 'reset_running_stats'):
        module.reset_running_stats()
    if plan:
        initialize(module, plan, generator, override, scheme)
    elif hasattr(module, 'reset_parameters'):
        module.reset_parameters()
