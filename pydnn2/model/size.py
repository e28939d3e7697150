"""net_size: what a network costs before it is trained.

For each layer: multiplications, additions, parameters, output shape and
the rows/columns lost to pooling (each layer's spec knows its own); then
totals, the training memory (:mod:`pydnn2.model.memory`), and an epoch-time
estimate calibrated on the current device by timing a few real training
steps (:mod:`pydnn2.model.timing`), in the memory layout the net trains in
(:mod:`pydnn2.model.layout`); pydnn guessed from a fixed "ec2 g2" speed
instead.
"""

from __future__ import annotations

import dataclasses
import html

import torch

from .. import checks
from ..errors import ConfigError
from ..table import Table
from .graph import Graph
from .html import table_html
from .layers import ConvPool, Dense, Input
from .memory import Memory, training_memory
from .timing import example_batches, time_training

_COLUMNS = Table(('layer', 'output', 'mults', 'adds', 'params', 'pool loss'),
                 right=(2, 3, 4, 5))


@dataclasses.dataclass(repr=False)
class SizeReport:
    """The result of :func:`net_size` / ``NN.net_size()``.

    ``rows`` holds one dict per layer (``layer``, ``output_shape``, ``mults``,
    ``adds``, ``params``, ``pool_loss``); totals and estimates follow. It shows
    as the table ``net_size`` prints (``repr``, ``str``), and as an HTML table
    in a notebook.
    """

    rows: list
    total_mults: int
    total_adds: int
    total_params: int
    memory_bytes: int = 0               # weights, gradients, optimizer state, activations
    seconds_per_sample: float | None = None  # calibrated training time of one row
    epoch_size: int | None = None       # rows per epoch the estimate is for
    seconds_per_epoch: float | None = None  # estimated time of one epoch
    device: str = ''
    memory: Memory | None = None        # memory_bytes by what holds them
    layout: str = ''                    # 'channels-last' when the net trains in it
    speeds: dict | None = None          # measured training rows/s of each choice offered

    def _cells(self):
        """The table's rows as strings, the totals last."""
        rows = [(r['layer'], str(r['output_shape']), f'{r["mults"]:,}', f'{r["adds"]:,}',
                 f'{r["params"]:,}', str(r['pool_loss']) if r['pool_loss'] else '')
                for r in self.rows]
        rows.append(('total', '', f'{self.total_mults:,}', f'{self.total_adds:,}',
                     f'{self.total_params:,}', ''))
        return rows

    def _notes(self):
        """The lines under the table: memory and the time estimate."""
        notes = [f'training memory: about {self.memory_bytes / 2 ** 20:,.1f} MiB']
        if self.seconds_per_epoch is not None:
            where = f'{self.device}, {self.layout}' if self.layout else self.device
            notes.append(f'estimated time per epoch of {self.epoch_size:,} rows on '
                         f'{where}: {self.seconds_per_epoch:,.2f} s')
        if self.speeds:
            notes.append('measured training rows/s: ' + ', '.join(
                f'{name} {speed:,.0f}' for name, speed in self.speeds.items()))
        return notes

    def __str__(self):
        return '\n'.join([_COLUMNS.render(self._cells())] + self._notes())

    def __repr__(self):
        return str(self)

    def _repr_html_(self):
        notes = ''.join(f'<p>{html.escape(n)}</p>' for n in self._notes())
        table = table_html(_COLUMNS.header, self._cells(), _COLUMNS.right)
        return f'<div class="pydnn2-size">{table}{notes}</div>'


def node_row(graph, node, label):
    """The size row of one node: its spec's cost and its module's parameter count."""
    module = graph.module_of(node)
    cost = node.spec.cost(graph.incoming(node.inputs), node.out_shape)
    return dict(layer=label, output_shape=node.out_shape, mults=cost.mults, adds=cost.adds,
                params=sum(p.numel() for p in module.parameters()) if module else 0,
                pool_loss=cost.pool_loss)


def graph_report(graph, labels, batch_size, updater=None):
    """A :class:`SizeReport` (not calibrated) of the nodes in ``labels``
    (``{node id: row label}``); the memory is that of training with the learning
    rule ``updater`` (by default Adam's: two slots per parameter, one temporary)."""
    rows = [node_row(graph, graph.nodes[i], label) for i, label in labels.items()]
    slots = {} if updater is None else {'optimizer_slots': updater.optimizer_slots,
                                        'step_temporaries': updater.step_temporaries}
    memory = training_memory(graph, batch_size, **slots)
    return SizeReport(rows, sum(r['mults'] for r in rows), sum(r['adds'] for r in rows),
                      sum(p.numel() for p in graph.module.parameters()), memory.total,
                      memory=memory)


def _spec_entry(i, entry):
    """Check one pydnn spec tuple; returns (kind, spec)."""
    needs = {'conv': ('filter', 'pool'), 'full': ('num',)}
    if (not isinstance(entry, (tuple, list)) or len(entry) != 2 or entry[0] not in needs
            or not isinstance(entry[1], dict) or any(k not in entry[1] for k in needs[entry[0]])):
        raise ConfigError(f"net_size: layer {i} must be ('conv', {{'filter': (num, h, w), "
                          f"'pool': (h, w)[, 'pool_stride': (h, w)]}}) or ('full', {{'num': n}}); "
                          f'received {entry!r}')
    return entry


def _spec_layer(i, kind, spec):
    """The layer spec of one pydnn spec tuple (ReLU initialisation, with biases)."""
    if kind == 'full':
        return Dense(spec['num'])
    filters = spec['filter']
    if not (isinstance(filters, (tuple, list)) and len(filters) == 3):
        raise ConfigError(f'net_size: layer {i} filter must be (num, height, width); received '
                          f'{filters!r}')
    return ConvPool(filters[0], tuple(filters[1:]), spec['pool'], spec.get('pool_stride'))


def spec_graph(root, layers, device='cpu'):
    """The graph of a net given as pydnn spec tuples, without nonlinearities."""
    if not (isinstance(root, (tuple, list)) and len(root) == 3
            and all(checks.is_integer(v) and v > 0 for v in root)):
        raise ConfigError(f'net_size: root must be (channels, height, width); received {root!r}')
    graph = Graph(torch.Generator().manual_seed(0), device)
    graph.reset(Input('images', tuple(root)), handle=None)
    for i, entry in enumerate(layers):
        kind, spec = _spec_entry(i, entry)
        with graph.recording({'pathway': 0, 'method': f'net_size: layer {i} ({kind})',
                              'args': {}}):
            graph.add(0, _spec_layer(i, kind, spec))
    return graph


def net_size(root, layers, batch_size=128, epoch_size=None, calibrate=True, device=None,
             verbose=True):
    """Print and return the size of a network given as pydnn spec tuples.

    Parameters
    ----------
    root : tuple
        Input shape (channels, height, width).
    layers : sequence
        ``('conv', {'filter': (num, h, w), 'pool': (h, w), 'pool_stride': (h, w)})``
        or ``('full', {'num': n})`` entries, in order.
    batch_size : int
        Batch size for the memory and time estimates.
    epoch_size : int, optional
        Rows per epoch for the time estimate (default 10,000).
    calibrate : bool
        Time a few training steps of an equivalent net on ``device`` to
        estimate the epoch time; False skips it.

    Returns
    -------
    SizeReport

    Examples
    --------
    >>> r = net_size((1, 28, 28), [('conv', {'filter': (8, 5, 5), 'pool': (2, 2)}),
    ...                            ('full', {'num': 10})], calibrate=False, verbose=False)
    >>> r.total_params == 8 * 25 + 8 + 8 * 12 * 12 * 10 + 10
    True
    """
    checks.batch_size(batch_size)
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    graph = spec_graph(root, layers, device if calibrate else 'cpu')
    labels = {i + 1: f'{kind} {i}' for i, (kind, _) in enumerate(layers)}
    report = graph_report(graph, labels, batch_size)
    if calibrate:
        make = lambda b: ({'images': torch.randn(b, *root, device=device)},  # noqa: E731
                          torch.zeros(b, dtype=torch.long, device=device))
        report.seconds_per_sample = time_training(graph.module, make, min(batch_size, 64),
                                                  device)
        report.epoch_size = epoch_size or 10000
        report.seconds_per_epoch = report.seconds_per_sample * report.epoch_size
        report.device = str(device)
    if verbose:
        print(report)
    return report


def net_size_of(net, calibrate=True, verbose=True, updater=None):
    """Size of a built net: per-layer costs (parameters counted from the module),
    memory, and a calibrated epoch time for its training set on its device.

    The memory is that of training with the learning rule ``updater`` (its
    ``optimizer_slots`` and ``step_temporaries``: SGD keeps no state, Momentum one
    tensor per parameter, Adam and AdaDelta two); without one, Adam's.

    The calibration times the memory layout the net trains in: for a net with
    convolutions that has none chosen yet, it makes the choice ``train`` would
    make (:meth:`pydnn2.net.NN.speed_choice`), which also reports the measured
    speed of each precision the hardware offers, and keeps it in
    ``net.memory_layout``."""
    graph = net.graph
    labels = {n.id: f'{n.id} {n.call}: {n.op}' for n in graph.nodes if n.op != 'input'}
    if updater is not None and not all(isinstance(getattr(updater, k, None), int) for k in (
            'optimizer_slots', 'step_temporaries')):
        raise ConfigError(f'net_size: updater must be a learning rule (nn.Adam(...), '
                          f'nn.Momentum(...), ...); received {type(updater).__name__}')
    report = graph_report(graph, labels, net.batch_size, updater)
    pre = net.preprocessor
    if calibrate and graph.output.spec.final:
        choice = net.speed_choice()
        report.layout = 'channels-last' if choice and choice.channels_last else ''
        report.speeds = dict(choice.speeds or {}) if choice is not None else {}
        report.seconds_per_sample = time_training(graph.module,
                                                  example_batches(graph, net.device),
                                                  net.batch_size, net.device,
                                                  channels_last=bool(report.layout))
        sizes = ([pre.num_rows(name) or 0 for name in ('train', 'valid', 'test')]
                 if pre.has_data() else [10000, 0, 0])
        report.epoch_size = sizes[0]
        # evaluation of valid (+ test) costs about a third of training per row
        report.seconds_per_epoch = report.seconds_per_sample * (
            sizes[0] // net.batch_size * net.batch_size + (sizes[1] + sizes[2]) / 3)
        report.device = str(net.device)
    if verbose:
        print(report)
    return report
