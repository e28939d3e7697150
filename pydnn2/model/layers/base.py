"""Layer specs: everything pydnn2 knows about a layer type, in one class.

A spec is one layer's arguments as plain data (``spec.args``) plus the
answers the rest of pydnn2 needs about its type:

================================  ==============================================
``output_shape(incoming, call)``  check the arguments against the incoming rows
                                  (at the builder call) and give the row shape out
``make_module(incoming)``         the torch module (None for channel inputs)
``init_plan(incoming)``           how its parameters are first drawn (``ParamInit``)
``describe()``                    its line in the layer table
``cost(incoming, out_shape)``     multiplications, additions, pool loss (``net_size``)
``activation_bytes(...)``         what one row keeps for the backward pass (memory)
``check_batch_size(...)``         refuse a training batch too small for the layer
``param_names``                   torch parameter names -> the short names of
                                  ``net.layers`` and ``get_description``
``accepts``, ``final``            token or value input; whether it ends a net
================================  ==============================================

``incoming`` is a list of :class:`Incoming`, one per input. Subclasses set
``op`` (the name files and tables use), which registers them: loading a file
can name only a spec class that is already defined. Adding a layer type
means writing one subclass (and, if users should have an ``add_*`` method
for it, a short builder method; ``net.add(spec)`` takes any spec).

>>> from pydnn2.model.layers.core import Dropout
>>> spec = Dropout(rate=0.25)
>>> spec.output_shape([Incoming((16,), FLOAT, 'add_hidden')], 'add_dropout')
(16,)
>>> spec.describe(), spec.args
('dropout 0.25', {'rate': 0.25})
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch

from ... import checks
from ...errors import FileFormatError, NetBuildError
from ..activations import activation_name
from ..initializers import ParamInit, as_initializer

FLOAT, TOKENS = 'float32', 'int64'   # what a node's rows hold: values, or integer tokens
SPECS: dict[str, type[LayerSpec]] = {}   # op -> spec class


@dataclasses.dataclass(frozen=True)
class Incoming:
    """What flows into a layer: one row's shape, its dtype, and where it came from
    (``"channel 'images'"`` or the builder call that made it), for messages."""

    shape: tuple
    dtype: str = FLOAT
    source: str = 'the data'


@dataclasses.dataclass(frozen=True)
class Cost:
    """One layer's arithmetic per row: multiplications, additions, and the rows and
    columns its pooling drops (``(rows, cols)`` or None)."""

    mults: int
    adds: int
    pool_loss: tuple | None = None


def spec_class(op: str) -> type[LayerSpec]:
    """The registered spec class of ``op``; a :class:`FileFormatError` for an unknown one."""
    try:
        return SPECS[op]
    except (KeyError, TypeError):
        raise FileFormatError(f'unknown layer type {op!r}; define (import) its spec before '
                              f'loading. Known: {sorted(SPECS)}') from None


class LayerSpec:
    """Base class of the layer specs (see the module docstring).

    A subclass's ``__init__`` takes its arguments by the names it keeps in
    ``args`` (so ``type(spec)(**spec.args)`` rebuilds it) and calls
    ``super().__init__(**args)``; it implements :meth:`output_shape`,
    :meth:`describe` and :meth:`cost`, and :meth:`make_module` and
    :meth:`init_plan` if it has a module and parameters.
    """

    op: str | None = None                   # the type's name in files, tables and descriptions
    param_names = {'weight': 'W', 'bias': 'b'}   # torch name -> short name
    accepts = 'values'                      # 'values', 'tokens' or 'any' incoming rows
    final = False                           # True for the classifier that ends a net

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.op is not None:
            SPECS[cls.op] = cls

    def __init__(self, **args: Any) -> None:
        self.args: dict[str, Any] = dict(args)

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in self.args.items())
        return f'{type(self).__name__}({args})'

    def to_plain(self) -> dict[str, Any]:
        """The spec as plain data: ``{'layer': op, **args}``."""
        return {'layer': self.op, **self.args}

    @staticmethod
    def from_plain(plain: dict[str, Any]) -> LayerSpec:
        """Rebuild a spec from :meth:`to_plain` (only registered types)."""
        args = dict(plain)
        return spec_class(args.pop('layer', None))(**args)

    # -- what every layer type answers -------------------------------------------------

    def output_shape(self, incoming: Sequence[Incoming], call: str) -> tuple[int, ...]:
        """Check the arguments (normalising ``self.args`` to plain data) and the
        incoming rows; return one output row's shape. Raise :class:`NetBuildError`
        naming ``call`` when they do not fit."""
        raise NotImplementedError(f'{type(self).__name__} must implement '
                                  f'output_shape(incoming, call)')

    def out_dtype(self, incoming: Sequence[Incoming]) -> str:
        """What the output rows hold: :data:`~pydnn2.model.layers.base.FLOAT` values (or
        :data:`~pydnn2.model.layers.base.TOKENS`)."""
        return FLOAT

    def make_module(self, incoming: Sequence[Incoming]) -> torch.nn.Module | None:
        """The torch module computing the layer, or None (channel inputs)."""
        return None

    def init_plan(self, incoming: Sequence[Incoming]) -> list[ParamInit]:
        """The :class:`~pydnn2.model.initializers.ParamInit` of each parameter to draw."""
        return []

    def describe(self) -> str:
        """The layer's short description in the layer table, e.g. ``'dense 128'``."""
        raise NotImplementedError(f'{type(self).__name__} must implement describe()')

    def cost(self, incoming: Sequence[Incoming], out_shape: tuple[int, ...]) -> Cost:
        """The :class:`Cost` of one row through the layer."""
        raise NotImplementedError(f'{type(self).__name__} must implement '
                                  f'cost(incoming, out_shape)')

    def activation_bytes(self, incoming: Sequence[Incoming], out_shape: tuple[int, ...]) -> int:
        """Bytes one row keeps from the forward to the backward pass (default:
        its float32 output)."""
        return 4 * math.prod(out_shape)

    def check_batch_size(self, incoming: Sequence[Incoming], batch_size: int,
                         call: str) -> None:
        """Raise :class:`~pydnn2.errors.ConfigError` naming ``call`` when the layer
        cannot train on batches of ``batch_size`` rows (any batch, by default)."""

    # -- helpers for subclasses --------------------------------------------------------

    @staticmethod
    def expect(incoming: Sequence[Incoming], call: str, ndim: int,
               form: str) -> tuple[int, ...]:
        """The single incoming shape, refusing any rank but ``ndim``."""
        shape = incoming[0].shape
        if len(shape) != ndim:
            raise NetBuildError(f'{call} needs a {form} input; got {shape} '
                                f'from {incoming[0].source}')
        return shape

    def check(self, call: str, name: str, kind: str, **options: Any) -> Any:
        """Check ``self.args[name]`` with ``pydnn2.checks.<kind>`` (raising
        :class:`NetBuildError` naming ``call``); store and return the result."""
        check = getattr(checks, kind)
        self.args[name] = check(self.args[name], name, where=call, error=NetBuildError,
                                **options)
        return self.args[name]

    def check_init(self, call: str, *names: str) -> None:
        """Initialiser arguments as their plain config dicts (or None)."""
        for name in names:
            init = as_initializer(self.args.get(name), call, name)
            self.args[name] = None if init is None else init.to_config()

    def check_bias_given(self, call: str) -> None:
        """Refuse a bias initialiser for a layer built with ``use_bias=False``."""
        if self.args.get('bias') is not None and not self.args['use_bias']:
            raise NetBuildError(f'{call}: bias={self.args["bias"]!r} was given but '
                                'use_bias=False leaves the layer without a bias')

    def check_activation(self, call: str, name: str) -> str:
        """An activation argument as its name ('relu', ...)."""
        self.args[name] = activation_name(self.args[name], name)
        return self.args[name]


def filter_plan(prefix: str, args: dict[str, Any], in_channels: int,
                pool_area: int = 1) -> list[ParamInit]:
    """The init plan of a bank of ``args['num_filters']`` filters over ``in_channels``
    maps, whose fans count the filter area: ``C * h * w`` in and, as in pydnn,
    ``F * h * w / pool area`` out (each input's gradient comes back through
    the pools)."""
    area = math.prod(args['filter_shape'])
    fans = in_channels * area, args['num_filters'] * area / pool_area
    return weight_and_bias(prefix, args, fans, args['weight_init'], args['use_bias'])


def weight_and_bias(prefix: str, args: dict[str, Any], fans: tuple[float, float], default: str,
                    bias: bool = True) -> list[ParamInit]:
    """The init plan of a layer with one weight (``args['init']``) and an optional
    bias (``args['bias']``), named ``<prefix>weight`` and ``<prefix>bias``."""
    plan = [ParamInit(prefix + 'weight', args.get('init'), *fans, default)]
    if bias:
        plan.append(ParamInit(prefix + 'bias', args.get('bias'), *fans, default, role='bias'))
    return plan
