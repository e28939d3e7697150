"""What every builder method shares: graph nodes, recorded calls, argument checks.

The ``add_*`` methods are spread over :mod:`pydnn2.builder` (pydnn's own
layers and pathways), :mod:`pydnn2.builder_maps` (pooling, deconvolution,
LRN, bias, skip) and :mod:`pydnn2.builder_sequences` (lookup tables,
recurrent and summary layers); they all build on :class:`BuilderBase`.
"""
import dataclasses
import functools
import inspect
import numbers
import sys

from . import initializers as I
from . import layers as L
from .errors import NetBuildError

FLOAT, TOKENS = 'float32', 'int64'   # what a node's rows hold: values, or integer tokens


@dataclasses.dataclass
class Node:
    """One vertex of the graph: a channel input, a layer or a merge."""

    id: int
    op: str                # 'input', 'conv_pool', 'fc', 'lstm', 'merge', ... (see net._describe)
    args: dict             # what the layer was built from (plain data)
    inputs: tuple          # ids of the nodes feeding it
    out_shape: tuple       # one row's shape, without the batch axis
    call: str              # the builder call that added it, e.g. 'add_convolution'
    pathway: int
    dtype: str = FLOAT     # TOKENS for integer token sequences (N, T), else FLOAT

    @property
    def key(self):
        """The node's name in ``module.layers``."""
        return f'n{self.id}'


class RerunWarning(UserWarning):
    """A source line added layers to the same net twice from different runs
    (usually a re-run notebook cell)."""


def _user_site():
    """The (filename, line, code object) of the first caller outside pydnn2."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get('__name__', '').startswith('pydnn2'):
        frame = frame.f_back
    if frame is None:
        return None
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code


def _plain(value):
    """Builder arguments as plain data: activations by name, initialisers as
    their config dicts, pathways by id."""
    if isinstance(value, I.Initializer):
        return value.to_config()
    if isinstance(value, BuilderBase):
        return {'pathway': value._pid}
    if isinstance(value, type):
        return value             # refused with a clear message by the method itself
    if callable(value):
        return L.activation_name(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def recorded(method):
    """Record a top-level builder call, roll it back whole if it fails."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        net = self._net
        if net._depth:
            return method(self, *args, **kwargs)
        self._check_open(method.__name__)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        call = {'pathway': self._pid, 'method': method.__name__,
                'args': {k: _plain(v) for k, v in list(bound.arguments.items())[1:]}}
        snapshot = net._snapshot()
        net._depth, net._call_name = 1, method.__name__
        try:
            result = method(self, *args, **kwargs)
        except BaseException:
            net._restore(snapshot)
            raise
        finally:
            net._depth = 0
        net._record(call, snapshot)
        return result

    return wrapper


def _positive_int(call, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise NetBuildError(f'{call}: {name} must be a positive integer; received {value!r}')
    return int(value)


def _pair(call, name, value, minimum=1):
    """``value`` (an int or a pair) as a (height, width) pair of ints >= ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    kind = 'positive' if minimum else 'non-negative'
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise NetBuildError(f'{call}: {name} must be a pair (height, width) of {kind} '
                            f'integers; received {value!r}')
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
            raise NetBuildError(f'{call}: {name} must be a {kind} integer or a pair of them; '
                                f'received {value!r}')
    return tuple(int(v) for v in value)


class BuilderBase:
    """The checks and helpers under every ``add_*`` method."""

    _net = None
    _pid = 0

    def _check_open(self, method):
        state = self._net._pathways.get(self._pid)
        if state is None or self._net._handles.get(self._pid) is not self:
            raise NetBuildError(f'{method}: this pathway no longer exists (its creating call '
                                'was undone); split or create a new one')
        if state['merged_into'] is not None:
            raise NetBuildError(f'{method}: pathway {self._pid} was already merged into '
                                f'pathway {state["merged_into"]}; add layers before merging')
        tip = self._net._nodes[state['tip']]
        if tip.op == 'logistic':
            raise NetBuildError(f'{method}: the net already ends in add_logistic; '
                                'call net.undo() first to add layers before it')

    def _tip(self):
        return self._net._nodes[self._net._pathways[self._pid]['tip']]

    @staticmethod
    def _source(node):
        return f"channel {node.args['channel']!r}" if node.op == 'input' else node.call

    def _in_shape(self, ndim=None, form=None, tokens=False):
        """The incoming row shape; refuses the wrong rank, and token input
        anywhere but a lookup table (``tokens=True``: only token input)."""
        tip = self._tip()
        shape, call = tip.out_shape, self._net._call_name
        if tokens and tip.dtype != TOKENS:
            raise NetBuildError(
                f'{call} needs an integer token channel (N, T); got float input {shape} from '
                f'{self._source(tip)} (ArrayPreprocessor serves a channel as tokens when it '
                'is named in token_channels=[...])')
        if not tokens and tip.dtype == TOKENS:
            raise NetBuildError(
                f'{call} needs float input; {self._source(tip)} holds integer tokens '
                f'{shape}: embed them first with add_lookup_table(vocab_size, embedding_dim)')
        if ndim is not None and len(shape) != ndim:
            raise NetBuildError(f'{call} needs a {form} input; got {shape} '
                                f'from {self._source(tip)}')
        return shape

    def _activation(self, activation, what='activation'):
        if activation is None:
            return self._net.activation_name
        return L.activation_name(activation, what)

    def _initializer(self, value, name):
        return I.as_initializer(value, self._net._call_name, name)

    def _bias_init(self, bias, has_bias, why='use_bias=False'):
        """The bias initialiser, refusing one for a layer left without a bias."""
        bias = self._initializer(bias, 'bias')
        if bias is not None and not has_bias:
            raise NetBuildError(f'{self._net._call_name}: bias={bias!r} was given but {why} '
                                'leaves the layer without a bias')
        return bias

    def _weight_and_bias(self, prefix, init, bias, fans, default, use_bias):
        """The init plan of a layer with one weight and an optional bias."""
        plan = [L.ParamInit(prefix + 'weight', init, *fans, default)]
        if use_bias:
            plan.append(L.ParamInit(prefix + 'bias', bias, *fans, role='bias'))
        return plan

    def _initialise(self, module, plan):
        """Attach ``plan`` (a list of :class:`~pydnn2.layers.ParamInit`) to
        ``module`` and fill its parameters from the net's generator."""
        module.init_plan = plan
        L.initialize(module, self._net._generator)
        return module
