"""net_size: what a network costs before it is trained.

For each layer: multiplications, additions, parameters, output shape and
the rows/columns lost to pooling; then totals, the training memory, and an
epoch-time estimate calibrated on the current device by timing a few real
training steps (pydnn guessed from a fixed "ec2 g2" speed instead).
"""

import copy
import dataclasses
import math
import numbers
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

BYTES = 4  # float32


@dataclasses.dataclass
class SizeReport:
    """The result of :func:`net_size` / ``NN.net_size()``.

    ``rows`` holds one dict per layer (``layer``, ``output_shape``, ``mults``,
    ``adds``, ``params``, ``pool_loss``); totals and estimates follow.
    """

    rows: list
    total_mults: int
    total_adds: int
    total_params: int
    memory_bytes: int = 0               # weights, gradients, optimizer state, activations
    seconds_per_sample: float = None    # calibrated training time of one row
    epoch_size: int = None              # rows per epoch the estimate is for
    seconds_per_epoch: float = None     # estimated time of one epoch
    device: str = ''

    def __str__(self):
        head = ('layer', 'output', 'mults', 'adds', 'params', 'pool loss')
        lines = [head] + [(r['layer'], str(r['output_shape']), f'{r["mults"]:,}',
                           f'{r["adds"]:,}', f'{r["params"]:,}',
                           str(r['pool_loss']) if r['pool_loss'] else '')
                          for r in self.rows]
        lines.append(('total', '', f'{self.total_mults:,}', f'{self.total_adds:,}',
                      f'{self.total_params:,}', ''))
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        text = '\n'.join('  '.join(c.rjust(w) if i > 1 else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(line, widths))).rstrip()
                         for line in lines)
        text += f'\ntraining memory: about {self.memory_bytes / 2 ** 20:,.1f} MiB'
        if self.seconds_per_epoch is not None:
            text += (f'\nestimated time per epoch of {self.epoch_size:,} rows on '
                     f'{self.device}: {self.seconds_per_epoch:,.2f} s')
        return text


def conv_row(shape, filters, filter_shape, pool, pool_stride, name='conv'):
    """Cost row of a valid convolution (stride 1) then max pooling, and its output shape."""
    c, h, w = shape
    fh, fw = filter_shape
    ph, pw = pool
    sh, sw = pool_stride or pool
    ch, cw = h - fh + 1, w - fw + 1
    if ch < 1 or cw < 1 or ph > ch or pw > cw:
        raise ConfigError(f'net_size: {name} with {fh}x{fw} filters and {ph}x{pw} pools does '
                          f'not fit the input {shape}')
    mults = filters * c * fh * fw * ch * cw        # the input-channel factor included
    out = (filters, (ch - ph) // sh + 1, (cw - pw) // sw + 1)
    loss = ((ch - ph) % sh, (cw - pw) % sw)
    return dict(layer=name, output_shape=out, mults=mults, adds=mults,
                params=filters * c * fh * fw + filters,
                pool_loss=loss if any(loss) else None), out


def full_row(shape, num, name='full'):
    """Cost row of a dense layer over the flattened input."""
    n_in = math.prod(shape)
    return dict(layer=name, output_shape=(num,), mults=n_in * num, adds=n_in * num,
                params=n_in * num + num, pool_loss=None), (num,)


def _spec_entry(i, entry):
    """Check one pydnn spec tuple; returns (kind, spec)."""
    needs = {'conv': ('filter', 'pool'), 'full': ('num',)}
    if (not isinstance(entry, (tuple, list)) or len(entry) != 2 or entry[0] not in needs
            or not isinstance(entry[1], dict) or any(k not in entry[1] for k in needs[entry[0]])):
        raise ConfigError(f"net_size: layer {i} must be ('conv', {{'filter': (num, h, w), "
                          f"'pool': (h, w)[, 'pool_stride': (h, w)]}}) or ('full', {{'num': n}}); "
                          f'received {entry!r}')
    return entry


def _ints(i, name, value, length):
    """A tuple of ``length`` positive ints, or a ConfigError naming the layer."""
    ok = (isinstance(value, (tuple, list)) and len(value) == length
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                  for v in value))
    if not ok:
        raise ConfigError(f'net_size: layer {i} {name} must be {length} positive integer(s); '
                          f'received {value!r}')
    return tuple(int(v) for v in value)


def _spec_module(root, layers):
    """A torch stand-in for pydnn's spec tuples, for timing."""
    mods, shape = [], tuple(root)
    for kind, spec in layers:
        if kind == 'conv':
            f, fh, fw = spec['filter']
            mods += [nn.Conv2d(shape[0], f, (fh, fw)),
                     nn.MaxPool2d(spec['pool'], spec.get('pool_stride') or spec['pool']),
                     nn.ReLU()]
            _, shape = conv_row(shape, f, (fh, fw), spec['pool'], spec.get('pool_stride'))
        else:
            mods += [nn.Flatten(), nn.Linear(math.prod(shape), spec['num']), nn.ReLU()]
            shape = (spec['num'],)
    return nn.Sequential(*mods), shape


def time_training(module, make_batch, batch_size, device, budget=1.0):
    """Seconds per row of training steps (forward, backward, SGD) on a copy of ``module``."""
    module = copy.deepcopy(module).to(device).train()
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1e-6)
    x, y = make_batch(batch_size)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(module(x).flatten(1), y).backward()   # y is all zeros: a valid class
        opt.step()

    for _ in range(2):
        step()
    _sync(device)
    windows = []       # the median of several short windows shrugs off bursts of other work
    for _ in range(5):
        steps, started = 0, time.perf_counter()
        while steps < 2 or (time.perf_counter() - started < budget / 5 and steps < 20):
            step()
            steps += 1
        _sync(device)
        windows.append((time.perf_counter() - started) / (steps * batch_size))
    return float(np.median(windows))


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def _report(rows, params_total=None, activations=0, batch_size=128, optimizer_slots=2):
    params = params_total if params_total is not None else sum(r['params'] for r in rows)
    memory = BYTES * (params * (2 + optimizer_slots) + activations * batch_size * 2)
    return SizeReport(rows, sum(r['mults'] for r in rows), sum(r['adds'] for r in rows),
                      params, memory)


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
    if len(root) != 3:
        raise ConfigError(f'net_size: root must be (channels, height, width); received {root!r}')
    rows, shape, activations = [], tuple(root), 0
    for i, entry in enumerate(layers):
        kind, spec = _spec_entry(i, entry)
        if kind == 'conv':
            if len(shape) != 3:
                raise ConfigError(f'net_size: layer {i} (conv) needs a (C, H, W) input; got '
                                  f'{shape} from the layer before')
            filters = _ints(i, 'filter', spec['filter'], 3)
            pool = _ints(i, 'pool', spec['pool'], 2)
            stride = _ints(i, 'pool_stride', spec.get('pool_stride') or pool, 2)
            row, shape = conv_row(shape, filters[0], filters[1:], pool, stride, f'conv {i}')
        else:
            row, shape = full_row(shape, _ints(i, 'num', (spec['num'],), 1)[0], f'full {i}')
        rows.append(row)
        activations += math.prod(shape)
    report = _report(rows, activations=activations, batch_size=batch_size)
    if calibrate:
        device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        module, out = _spec_module(root, layers)
        make = lambda b: (torch.randn(b, *root, device=device),  # noqa: E731
                          torch.zeros(b, dtype=torch.long, device=device))
        report.seconds_per_sample = time_training(module, make, min(batch_size, 64), device)
        report.epoch_size = epoch_size or 10000
        report.seconds_per_epoch = report.seconds_per_sample * report.epoch_size
        report.device = str(device)
    if verbose:
        print(report)
    return report


def _pooling_cost(a, in_shape, out):
    (kh, kw), (sh, sw), (ph, pw) = a['fshape'], a['strides'], a['padding']
    loss = ((in_shape[1] + 2 * ph - kh) % sh, (in_shape[2] + 2 * pw - kw) % sw)
    elements = math.prod(out)
    return (elements if a['op'] == 'avg' else 0), elements * kh * kw, loss if any(loss) else None


def _deconvolution_cost(a, in_shape, out):
    mults = math.prod(in_shape) * a['num_filters'] * math.prod(a['filter_shape'])
    return mults, mults, None


def _recurrent_cost(gates):
    def cost(a, in_shape, out):
        steps, features = in_shape
        mults = steps * gates * a['output_size'] * (features + a['output_size'])
        return mults, mults, None
    return cost


_SEQUENCE_AND_MAP_OPS = {   # op -> (args, in_shape, out_shape) -> (mults, adds, pool loss)
    'pooling': _pooling_cost,
    'deconvolution': _deconvolution_cost,
    'lrn': lambda a, i, o: (math.prod(o) * (a['depth'] + 2), math.prod(o) * a['depth'], None),
    'bias': lambda a, i, o: (0, math.prod(o), None),
    'lookup_table': lambda a, i, o: (0, 0, None),
    'recurrent': _recurrent_cost(1), 'lstm': _recurrent_cost(4), 'gru': _recurrent_cost(3),
    'recurrent_sum': lambda a, i, o: (0, math.prod(i), None),
    'recurrent_mean': lambda a, i, o: (math.prod(o), math.prod(i), None),
}


def _node_row(net, node):
    module = net.module.layers[node.key] if node.key in net.module.layers else None
    params = sum(p.numel() for p in module.parameters()) if module is not None else 0
    in_shape = net._nodes[node.inputs[0]].out_shape if node.inputs else node.out_shape
    a = node.args
    if node.op == 'conv_pool':
        row, _ = conv_row(in_shape, a['num_filters'], a['filter_shape'], a['pool_shape'],
                          a['pool_stride'])
        row.update(params=params)
    elif node.op in ('fc', 'logistic'):
        row, _ = full_row(in_shape, node.out_shape[0])
        row.update(params=params)
    elif node.op in _SEQUENCE_AND_MAP_OPS:
        mults, adds, loss = _SEQUENCE_AND_MAP_OPS[node.op](a, in_shape, node.out_shape)
        row = dict(output_shape=node.out_shape, mults=mults, adds=adds, params=params,
                   pool_loss=loss)
    else:
        elements = math.prod(node.out_shape)
        row = dict(output_shape=node.out_shape, mults=elements if node.op in ('bn', 'act') else 0,
                   adds=elements if node.op == 'bn' else 0, params=params, pool_loss=None)
    row['layer'] = f'{node.id} {node.call}: {node.op}'
    return row


def _example_rows(net, channel, rows, shape):
    """Random rows of a channel for timing: values, or token 0 for token channels."""
    if net._channel_dtype(channel) == 'int64':
        return torch.zeros(rows, *shape, dtype=torch.long, device=net.device)
    return torch.randn(rows, *shape, device=net.device)


def net_size_of(net, calibrate=True, verbose=True):
    """Size of a built net: per-layer costs (parameters counted from the module),
    memory, and a calibrated epoch time for its training set on its device."""
    nodes = [n for n in net._nodes if n.op != 'input']
    rows = [_node_row(net, n) for n in nodes]
    total = sum(p.numel() for p in net.module.parameters())
    activations = sum(math.prod(n.out_shape) for n in nodes)
    report = _report(rows, total, activations, net.batch_size)
    pre = net.preprocessor
    if calibrate and net.output_shape == (net.num_classes,):
        shapes = {c: pre.shape_for(c) for c in {n.args['channel'] for n in net._nodes
                                                 if n.op == 'input'}}
        make = lambda b: ({c: _example_rows(net, c, b, s)  # noqa: E731
                           for c, s in shapes.items()},
                          torch.zeros(b, dtype=torch.long, device=net.device))
        report.seconds_per_sample = time_training(net.module, make, net.batch_size, net.device)
        has = hasattr(pre, 'has_data') and pre.has_data()
        sizes = [len(y) for y in pre.get_raw_y()] if has else [10000, 0, 0]
        report.epoch_size = sizes[0]
        # evaluation of valid (+ test) costs about a third of training per row
        report.seconds_per_epoch = report.seconds_per_sample * (
            sizes[0] // net.batch_size * net.batch_size + (sizes[1] + sizes[2]) / 3)
        report.device = str(net.device)
    if verbose:
        print(report)
    return report
