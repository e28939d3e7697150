"""What every builder method shares: the recording of calls and the checks of pathways.

A builder method is decorated with :func:`recorded`: a call from user code
runs inside :meth:`Graph.recording <pydnn2.model.graph.Graph.recording>`
(all or nothing), is kept as plain data (:func:`plain`), and then announced:
its ``in -> out`` shapes printed when the net is verbose, and a
:class:`RerunWarning` when the same source line already added layers from
an earlier run of its cell. Calls a builder method makes to others (such as
``add_convolution`` adding a conv-pool, a batch norm and a nonlinearity) are
part of the outer call. A pydnn2 error raised by a call from user code
comes out with pydnn2's frames cut from its traceback
(:mod:`pydnn2.tracebacks`).
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from typing import Any, Callable, TypeVar, cast

from .. import distributed, tracebacks
from ..errors import NetBuildError, Pydnn2Error
from .activations import activation_name
from .initializers import Initializer, as_initializer, is_config
from .layers.base import LayerSpec

F = TypeVar('F', bound=Callable[..., Any])


class RerunWarning(UserWarning):
    """A source line added layers to the same net twice from different runs
    (usually a re-run notebook cell)."""


def _column(frame):
    """The column of the call a frame is making (None before Python 3.11)."""
    positions = getattr(frame.f_code, 'co_positions', None)
    if positions is None:
        return None
    for index, position in enumerate(positions()):      # one per 2-byte instruction
        if index == frame.f_lasti // 2:
            return position[2]
    return None


def user_site():
    """The (filename, line, column, code object) of the first caller outside pydnn2.

    The column tells apart two calls on one line, which IPython runs as two
    code objects (one per statement).
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get('__name__', '').startswith('pydnn2'):
        frame = frame.f_back
    if frame is None:
        return None
    return frame.f_code.co_filename, frame.f_lineno, _column(frame), frame.f_code


def plain(value):
    """Builder arguments as plain data: activations by name, initialisers and layer
    specs as their config dicts, pathways by id."""
    if isinstance(value, Initializer):
        return value.to_config()
    if isinstance(value, LayerSpec):
        return {k: plain(v) for k, v in value.to_plain().items()}
    if isinstance(value, BuilderBase):
        return {'pathway': value._pid}
    if isinstance(value, type):
        return value             # refused with a clear message by the method itself
    if callable(value):
        return activation_name(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def unplain(value, handles):
    """The inverse of :func:`plain` for a recorded call's argument, given the
    pathway ``handles`` of the graph being rebuilt."""
    if isinstance(value, dict) and set(value) == {'pathway'}:
        return handles[value['pathway']]
    if isinstance(value, dict) and 'layer' in value:
        return LayerSpec.from_plain(value)
    if is_config(value):
        return as_initializer(value, 'load', 'initializer')
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return [unplain(v, handles) for v in value]
        return tuple(value)
    return value


def _announce(net, graph, call):
    """After a user's call: warn about a re-run source line, print the shapes."""
    site = user_site()
    if site is not None:
        key = site[:3]
        if key in graph.sites and graph.sites[key] is not site[3]:
            warnings.warn(
                f'{call["method"]} at {key[0]}:{key[1]} already added layers to net '
                f'{net.name!r} in an earlier run (a re-run notebook cell?); they are now '
                'there twice. Call net.undo() to remove the last addition.',
                RerunWarning, stacklevel=3)
        graph.sites[key] = site[3]
        call['site'] = key
    new = graph.nodes[call['first_node']:]
    if net.verbose and new and distributed.is_writer():    # (under torchrun, rank 0 alone)
        before = [graph.nodes[i].out_shape for i in new[0].inputs] or ['data']
        print(f'{call["method"]}: {" + ".join(map(str, before))} -> {new[-1].out_shape}')


def recorded(method: F) -> F:
    """Record a top-level builder call, roll it back whole if it fails.

    The decorated method is marked ``recorded = True``: only such methods are
    replayed from a file.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        graph = self._graph
        if graph.current_call is not None:       # part of an outer builder call
            return method(self, *args, **kwargs)
        try:
            self._check_open(method.__name__)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            call = {'pathway': self._pid, 'method': method.__name__,
                    'args': {k: plain(v) for k, v in list(bound.arguments.items())[1:]}}
            with graph.recording(call):
                result = method(self, *args, **kwargs)
        except Pydnn2Error as exc:      # the user's line and the message, and no pydnn2 frames
            if not tracebacks.filtering():
                raise
            users_frames = tracebacks.without_internal_frames(exc.__traceback__)
            # the same error with fewer frames (set_traceback_filtering(False) shows all)
            raise exc.with_traceback(users_frames)  # noqa: B904 - not a new error
        if not graph.replaying:
            _announce(self._net, graph, call)
        return result

    wrapper.recorded = True  # type: ignore[attr-defined]  # a mark on the function object
    return cast(F, wrapper)


class BuilderBase:
    """The checks and helpers under every ``add_*`` method; a builder is the net
    itself (pathway 0) or one of its :class:`~pydnn2.model.builder.Pathway`
    handles, and reaches the net's graph only through its public methods."""

    _net: Any = None    # the NN (not imported here: the net imports the builder)
    _pid = 0

    @property
    def _graph(self):
        return self._net.graph

    def _check_open(self, method):
        graph = self._graph
        state = graph.pathways.get(self._pid)
        if state is None or graph.handles.get(self._pid) is not self:
            raise NetBuildError(f'{method}: this pathway no longer exists (its creating call '
                                'was undone); split or create a new one')
        if state.merged_into is not None:
            raise NetBuildError(f'{method}: pathway {self._pid} was already merged into '
                                f'pathway {state.merged_into}; add layers before merging')
        tip = graph.tip(self._pid)
        if tip.spec.final:
            raise NetBuildError(f'{method}: the net already ends in its final layer '
                                f'({tip.spec.describe()}, added by {tip.call}); call net.undo() '
                                'first to add layers before it')

    def _tip(self):
        return self._graph.tip(self._pid)

    def _add(self, spec):
        """Add ``spec`` to the end of this pathway; returns the new node."""
        return self._graph.add(self._pid, spec)

    def _activation(self, activation, what='activation'):
        """An activation's name; None means the net's default activation."""
        if activation is None:
            return self._net.activation_name
        return activation_name(activation, what)

    def _no_bias_with_norm(self, bias, batch_normalize):
        """Refuse a bias initialiser for a layer whose batch norm replaces its bias."""
        bias = as_initializer(bias, self._graph.current_call, 'bias')
        if bias is not None and batch_normalize:
            raise NetBuildError(f'{self._graph.current_call}: bias={bias!r} was given but '
                                'batch_normalize=True leaves the layer without a bias')


def builder_method(cls, name):
    """The builder method ``name`` of builder class ``cls`` (for replaying a call).

    Only names on the allow-list of ``cls``'s methods marked ``recorded``
    are looked up, so a file's calls can name nothing else (not ``net_size``,
    not a dunder); anything else is a :class:`NetBuildError`.
    """
    allowed = {key for klass in cls.__mro__ for key, value in vars(klass).items()
               if getattr(value, 'recorded', False) is True}
    if not isinstance(name, str) or name not in allowed:
        raise NetBuildError(f'{name!r:.60} is not a builder method of {cls.__name__} (those '
                            'are the add_* methods, split_pathways, merge_pathways, ...)')
    return getattr(cls, name)
