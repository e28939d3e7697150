"""The memory layout a net trains in, NCHW or channels-last, chosen by measurement.

Channels-last (NHWC feature maps) trains convolutional nets much faster on
some devices (1.6x for the benchmark CNN on a 2-core CPU) and slower on
others. :func:`resolve` settles ``train``'s ``channels_last`` option: True or
False forces a layout; None (the default) uses the net's choice, which
:func:`choose` makes once by timing a few training steps in each layout on
a copy of the module (:func:`~pydnn2.model.timing.time_layouts`), leaving
the net's weights and every random generator as they were.

- Only nets with convolution filters (4-D weights) are measured; the others
  always train in NCHW.
- Channels-last is chosen only when it is at least :data:`MARGIN` times as
  fast: a close call stays NCHW, so that a timing's noise rarely flips it.
- The choice is a :class:`LayoutChoice` kept on the net
  (``net.memory_layout``) and written into its files; it is reused while
  the net's architecture, batch size, device and ``amp`` are those it was
  measured for. Nets of the same architecture, batch size and device in one
  process share one measurement (:func:`forget` drops them). A resumed run
  takes the layout its checkpoint recorded.

Dropout masks are drawn in memory order, so the two layouts train
differently with dropout (and differ by rounding without it): a run is
reproducible given the same layout, and ``channels_last=False`` pins it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import torch

from .modules import module_lock
from .timing import example_batches, time_layouts

MARGIN = 1.2            # channels-last must be this much faster to be chosen
BUDGET = 0.5            # seconds of timed steps, both layouts together (after a warm-up)
_CHOSEN: dict = {}      # key -> LayoutChoice: one measurement per architecture in a process


@dataclasses.dataclass
class LayoutChoice:
    """The memory layout chosen for a net, and what the choice rests on."""

    channels_last: bool     # True: NHWC feature maps; False: NCHW
    speedup: float          # channels-last's measured speed over NCHW's
    steps: int              # training steps the measurement ran
    device: str             # the device it was measured on
    key: str                # what it was measured for (architecture, batch, device, amp)

    def __str__(self):
        if self.channels_last:
            return (f'memory layout: channels-last ({self.speedup:.1f}x faster in '
                    f'{self.steps} steps)')
        return (f'memory layout: NCHW (channels-last {self.speedup:.2f}x as fast in '
                f'{self.steps} steps; it needs {MARGIN}x)')

    def as_dict(self):
        """Plain data for a file."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The choice :meth:`as_dict` wrote (None stays None); raises ValueError for
        anything else."""
        if data is None:
            return None
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise ValueError(f'a memory layout record needs the keys {names}; got {data!r}')
        types = (bool, float, int, str, str)
        if not all(isinstance(data[n], t) for n, t in zip(names, types)):
            raise ValueError(f'a memory layout record of the wrong types: {data!r}')
        return cls(**data)


def has_feature_maps(module):
    """Whether ``module`` has convolution filters (4-D weights), whose layout
    channels-last changes."""
    return any(p.dim() == 4 for p in module.parameters())


def layout_key(net, amp=None):
    """What a measurement holds for: the net's architecture and shapes, batch size,
    device and mixed precision."""
    shapes = [(n.op, n.out_shape) for n in net.graph.nodes]
    text = f'{torch.device(net.device)}|{net.batch_size}|{amp}|{shapes}|{net.module!r}'
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _autocast(amp, device):
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
    return functools.partial(torch.autocast, torch.device(device).type, dtype) if dtype else None


def measure(net, amp=None, budget=BUDGET):
    """Time both layouts on a copy of ``net.module``; returns a :class:`LayoutChoice`."""
    timing = time_layouts(net.module, example_batches(net.graph, net.device), net.batch_size,
                          net.device, budget, _autocast(amp, net.device))
    return LayoutChoice(timing.speedup >= MARGIN, float(timing.speedup), int(timing.steps),
                        str(net.device), layout_key(net, amp))


def choose(net, amp=None, recorded=None, log=None):
    """The net's :class:`LayoutChoice` (None for a net without convolution filters).

    Taken, in this order, from ``recorded`` (a resumed checkpoint's), the net's
    own ``memory_layout``, this process's earlier measurement of the same
    architecture, or measured now (``log(str(choice))`` then says what was
    found). Whatever is found is kept in ``net.memory_layout``.
    """
    if not has_feature_maps(net.module):
        return None
    key = layout_key(net, amp)
    found = [c for c in (recorded, getattr(net, 'memory_layout', None), _CHOSEN.get(key))
             if c is not None and c.key == key]
    if found:
        choice = found[0]
    else:
        choice = measure(net, amp)
        if log is not None:
            log(str(choice))
    net.memory_layout = _CHOSEN[key] = choice
    return choice


def forget():
    """Forget this process's measurements: a net without a ``memory_layout`` of
    its own is measured again."""
    _CHOSEN.clear()


def apply(module, channels_last):
    """Put ``module``'s 4-D weights in channels-last order, or back in NCHW order."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with module_lock(module):
        module.to(memory_format=layout)


def resolve(net, channels_last, amp=None, recorded=None, log=None, across=None):
    """``train``'s ``channels_last`` option settled to True or False (None: the
    net's :func:`choose`), applied to ``net.module``; returns it.

    ``across(function)``, when given, runs the choice where it should be made
    and returns its result (data-parallel training passes
    :func:`pydnn2.distributed.on_writer`: rank 0 measures, every rank takes
    its choice, so that all train in one layout).
    """
    if channels_last is None:
        decide = functools.partial(choose, net, amp, recorded, log)
        choice = across(decide) if across is not None else decide()
        if choice is not None:
            net.memory_layout = choice
        channels_last = bool(choice and choice.channels_last)
    apply(net.module, channels_last)
    return channels_last


def adopt(net, choice):
    """Give a net rebuilt from a file the ``choice`` recorded there (None: none), in its
    module too where it holds (same architecture, batch size and device), so that
    the net predicts as the one saved did."""
    net.memory_layout = choice
    if choice is not None and choice.key == layout_key(net):
        apply(net.module, choice.channels_last)


def recorded_in(state):
    """The :class:`LayoutChoice` a checkpoint's net recorded (None if it has none, or
    one that is not a record of ours: the layout is then measured again)."""
    net = (state or {}).get('net') or {}
    try:
        return LayoutChoice.from_dict((net.get('config') or {}).get('memory_layout'))
    except ValueError:
        return None
