"""The graph a net is built into: nodes, pathways, recorded calls and the plan.

A :class:`Graph` is what the builder methods talk to. Each node is a layer
spec with its inputs and its output shape; each pathway is a branch whose
tip grows as layers are added, until it is merged into another; each
top-level builder call is recorded as plain data, so a net is rebuilt by
replaying its calls. The graph keeps the torch modules in one
:class:`~pydnn2.model.modules.GraphModule` and gives it the plan (which
nodes run, in which order) after every call.

A builder call runs inside :meth:`Graph.recording`: it stamps the nodes the
call adds with its name, rolls them all back if the call fails, and records
the call if it succeeds.

>>> import torch
>>> from pydnn2.model.layers import Dense, Input, Logistic
>>> graph = Graph(torch.Generator().manual_seed(0))
>>> graph.reset(Input('x', (4,)), handle='net')
>>> with graph.recording({'pathway': 0, 'method': 'add_dense', 'args': {}}):
...     node = graph.add(0, Dense(3))
>>> node.out_shape, graph.output.out_shape, len(graph.calls)
((3,), (3,), 1)
>>> graph.module({'x': torch.zeros(2, 4)}).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses

import torch

from ..errors import NetBuildError
from .initializers import initialize, reset
from .layers.base import FLOAT, TOKENS, Incoming, LayerSpec
from .memory import check_fits, module_bytes
from .modules import GraphModule


@dataclasses.dataclass
class Node:
    """One vertex of the graph: a channel input, a layer or a merge."""

    id: int
    spec: LayerSpec        # what it is (its type, arguments and costs)
    inputs: tuple          # ids of the nodes feeding it
    out_shape: tuple       # one row's shape, without the batch axis
    call: str              # the builder call that added it, e.g. 'add_convolution'
    pathway: int
    dtype: str = FLOAT     # TOKENS for integer token sequences (N, T), else FLOAT

    @property
    def op(self):
        """The layer type's name ('input', 'conv_pool', 'fc', 'lstm', 'merge', ...)."""
        return self.spec.op

    @property
    def args(self):
        """What the layer was built from (plain data)."""
        return self.spec.args

    @property
    def key(self):
        """The node's name in ``module.layers``."""
        return f'n{self.id}'

    @property
    def source(self):
        """Where its rows come from, in a user's words (a channel or a builder call)."""
        return f"channel {self.args['channel']!r}" if self.op == 'input' else self.call


@dataclasses.dataclass
class PathwayState:
    """A branch of the graph: the node it ends in and whether it was merged."""

    tip: int
    merged_into: int | None = None  # the pathway it was merged into, once merged
    origin: str = 'NN'         # the call that made it


class Graph:
    """Nodes, pathways, recorded calls and the compiled module of one net.

    Parameters
    ----------
    generator : torch.Generator
        Draws the initial weights of every layer added.
    scheme : {'pydnn', 'he-glorot'}
        The default initialisation of weights without an ``init=`` of their own.
    device : torch.device or str
        Where the modules live.
    """

    def __init__(self, generator, device='cpu', scheme='pydnn'):
        self.generator, self.device, self.scheme = generator, device, scheme
        self.module = GraphModule().to(device)
        self.nodes, self.pathways, self.handles, self.calls = [], {}, {}, []
        self.sites = {}            # (file, line) of a call -> the code object that ran it
        self._call = None          # the top-level call being recorded
        self._reusable = {}        # pathway handles kept across a replay
        self.replaying = False     # True while replay() rebuilds the graph

    # -- reading -------------------------------------------------------------------------

    @property
    def output(self):
        """The node the main pathway ends in."""
        return self.nodes[self.pathways[0].tip]

    @property
    def current_call(self):
        """The name of the builder call being recorded, or None between calls."""
        return None if self._call is None else self._call['method']

    def tip(self, pid):
        """The node pathway ``pid`` ends in."""
        return self.nodes[self.pathways[pid].tip]

    def incoming(self, node_ids):
        """What flows out of the nodes ``node_ids``, as :class:`Incoming` rows."""
        return [Incoming(self.nodes[i].out_shape, self.nodes[i].dtype, self.nodes[i].source)
                for i in node_ids]

    def channel_of(self, node):
        """The data channel a node's main input line starts from."""
        while node.op != 'input':
            node = self.nodes[node.inputs[0]]
        return node.args['channel']

    def check_batch_size(self, batch_size):
        """Raise :class:`~pydnn2.errors.ConfigError` when a layer cannot train on
        batches of ``batch_size`` rows (batch normalization of one value per channel)."""
        for node in self.nodes:
            node.spec.check_batch_size(self.incoming(node.inputs), batch_size, node.call)

    def unmerged(self):
        """The ids of split-off pathways never merged back."""
        return [pid for pid, p in self.pathways.items() if pid and p.merged_into is None]

    def module_of(self, node):
        """The torch module of a node, or None for channel inputs."""
        return self.module.layers[node.key] if node.key in self.module.layers else None

    # -- building ------------------------------------------------------------------------

    def reset(self, root, handle):
        """Empty the graph and start the main pathway from the input spec ``root``."""
        for key in list(self.module.layers):
            del self.module.layers[key]
        self.nodes, self.pathways, self.handles, self.calls = [], {}, {}, []
        self.new_pathway(None, 'NN', lambda pid: handle)
        self._call = {'method': 'NN'}
        try:
            self.add(0, root)
        finally:
            self._call = None
        self.refresh()

    def new_pathway(self, tip, origin, make_handle):
        """Open a pathway starting after node ``tip`` (None: from a channel, which
        the caller adds next); ``make_handle(pid)`` makes its builder handle."""
        pid = len(self.pathways)
        self.pathways[pid] = PathwayState(tip, None, origin)
        self.handles[pid] = self._reusable.get(pid) or make_handle(pid)
        return pid

    def add(self, pid, spec, inputs=None):
        """Add ``spec`` to the end of pathway ``pid`` (or after the nodes ``inputs``):
        check it, make and initialise its module; returns the new :class:`Node`."""
        pathway = self.pathways[pid]
        if inputs is None:
            inputs = () if pathway.tip is None else (pathway.tip,)
        incoming = self.incoming(inputs)
        call = self.current_call
        self._check_dtype(spec, incoming, call)
        out_shape = tuple(spec.output_shape(incoming, call))
        node = Node(len(self.nodes), spec, tuple(inputs), out_shape, call, pid,
                    spec.out_dtype(incoming))
        module = self._make_module(spec, incoming, call)
        if module is not None:
            initialize(module, spec.init_plan(incoming), self.generator, scheme=self.scheme)
            self.module.layers[node.key] = module.to(self.device)
        self.nodes.append(node)
        pathway.tip = node.id
        return node

    def _make_module(self, spec, incoming, call):
        """The spec's module, refused (:func:`~pydnn2.model.memory.check_fits`) before
        its parameters are allocated when they would not fit in memory: it is made
        on the ``meta`` device first, which allocates nothing."""
        try:
            with torch.device('meta'):
                probe = spec.make_module(incoming)
        except (RuntimeError, NotImplementedError):   # needs real tensors to be made
            probe = None
        if probe is not None:
            check_fits(module_bytes(probe), self.device, call)
        return spec.make_module(incoming)

    @staticmethod
    def _check_dtype(spec, incoming, call):
        for item in incoming:
            if spec.accepts == 'tokens' and item.dtype != TOKENS:
                raise NetBuildError(
                    f'{call} needs an integer token channel (N, T); got float input '
                    f'{item.shape} from {item.source} (ArrayPreprocessor serves a channel as '
                    'tokens when it is named in token_channels=[...])')
            if spec.accepts == 'values' and item.dtype == TOKENS:
                raise NetBuildError(
                    f'{call} needs float input; {item.source} holds integer tokens '
                    f'{item.shape}: embed them first with add_lookup_table(vocab_size, '
                    'embedding_dim)')

    def merge(self, pid, others, spec):
        """Join the pathways ``others`` into ``pid`` through the merge ``spec``."""
        inputs = (self.pathways[pid].tip,) + tuple(self.pathways[o].tip for o in others)
        node = self.add(pid, spec, inputs)
        for other in others:
            self.pathways[other].merged_into = pid
        return node

    def reinitialize(self, override=None):
        """Draw every layer's weights again from the generator (``init_model``)."""
        for node in self.nodes:
            module = self.module_of(node)
            if module is not None:
                reset(module, node.spec.init_plan(self.incoming(node.inputs)), self.generator,
                      override, self.scheme)

    # -- recording -----------------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self, call):
        """Run one top-level builder call: on failure undo every node it added and
        rewind the weight generator (so the next call draws what it would have drawn
        had the failed one never been made); on success record ``call`` (a dict with
        'pathway', 'method', 'args') and update the module's plan."""
        snapshot = len(self.nodes), copy.deepcopy(self.pathways), self.generator.get_state()
        self._call = call
        try:
            yield
        except BaseException:
            self._restore(snapshot)
            raise
        finally:
            self._call = None
        call['first_node'] = snapshot[0]
        self.calls.append(call)
        self.refresh()

    def _restore(self, snapshot):
        count, pathways, generator = snapshot
        self.generator.set_state(generator)
        for node in self.nodes[count:]:
            if node.key in self.module.layers:
                del self.module.layers[node.key]
        del self.nodes[count:]
        self.pathways = pathways
        self.handles = {pid: h for pid, h in self.handles.items() if pid in pathways}

    def refresh(self):
        """Give the module the plan: the nodes the output needs, in order added."""
        needed, stack = set(), [self.output.id]
        while stack:
            nid = stack.pop()
            if nid not in needed:
                needed.add(nid)
                stack.extend(self.nodes[nid].inputs)
        plan = [(n.key, n.args['channel'] if n.op == 'input' else None,
                 tuple(self.nodes[i].key for i in n.inputs))
                for n in self.nodes if n.id in needed]
        self.module.set_plan(plan, self.output.key)

    def replay(self, calls, root, run):
        """Rebuild from recorded ``calls``: reset to the input spec ``root``, then
        ``run(call)`` each call. Pathway handles that survive keep working."""
        self._reusable, self.replaying = dict(self.handles), True
        try:
            self.reset(root, self._reusable[0])
            for call in calls:
                run(call)
        finally:
            self._reusable, self.replaying = {}, False
