"""How a net trains fastest: its memory layout (NCHW or channels-last), and with
``amp='auto'`` its precision (fp32 or bf16), chosen by measurement.

Channels-last (NHWC feature maps) trains convolutional nets much faster on
some devices (1.6x for the benchmark CNN on a 2-core CPU) and slower on
others; bf16 autocast is much faster where the hardware computes it natively
(AMX or AVX512-BF16 CPUs, recent GPUs) and much slower where it is emulated.
:func:`choose` times a few training steps of each choice the hardware offers
(:func:`offered`) on a copy of the module
(:func:`~pydnn2.model.timing.time_layouts`), leaving the net's weights and
every random generator as they were:

- the two layouts, for nets with convolution filters (4-D weights) only; the
  others always train in NCHW;
- bf16 autocast beside fp32 where :func:`native_low_precision` says the
  hardware computes it natively (for ``amp='auto'``, and reported by
  ``net_size``); elsewhere fp32 alone, and a net without convolutions is not
  measured at all.
- A choice other than the plain one (channels-last over NCHW, bf16 over fp32)
  is taken only when it is at least :data:`MARGIN` times as fast: a close call
  stays plain, so that a timing's noise rarely flips it.
- The result is a :class:`LayoutChoice` the net keeps (``net.memory_layout``,
  through :meth:`~pydnn2.net.NN.speed_choice`) and writes into its files; it is
  reused while the net's architecture, batch size, device and ``amp`` are
  those it was measured for. Nets of the same architecture, batch size and
  device in one process share one measurement (:func:`forget` drops them). A
  resumed run takes the choice its checkpoint recorded.

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
from .timing import example_batches, time_layouts, time_training

MARGIN = 1.2            # channels-last (bf16) must be this much faster to be chosen
BUDGET = 0.5            # seconds of timed steps per precision measured (after a warm-up)
_CHOSEN: dict = {}      # key -> LayoutChoice: one measurement per architecture in a process


def native_low_precision(device):
    """The autocast precisions ``device`` computes natively, which ``amp='auto'`` may
    take: ``('bf16',)`` on a CPU with AMX tiles or AVX512-BF16
    (``torch.cpu._is_amx_tile_supported``, ``torch.cpu._is_avx512_bf16_supported``) and
    on a CUDA device that supports bf16 (``torch.cuda.is_bf16_supported``); else none
    (an emulated bf16 trains several times slower than fp32)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return ('bf16',) if torch.cuda.is_bf16_supported() else ()
    if device.type != 'cpu':
        return ()
    cpu = torch.cpu
    native = any(getattr(cpu, name, lambda: False)()
                 for name in ('_is_amx_tile_supported', '_is_avx512_bf16_supported'))
    return ('bf16',) if native else ()


def offered(device, amp=None):
    """The precisions a measurement times for ``amp``: the one asked for, or for None
    and ``'auto'`` fp32 (None) and :func:`native_low_precision`'s."""
    if amp in (None, 'auto'):
        return (None,) + native_low_precision(device)
    return (amp,)


def label(amp, channels_last=None):
    """``'fp32 NCHW'``, ``'bf16 channels-last'``, ``'fp32'`` (no layout to choose)."""
    text = amp or 'fp32'
    if channels_last is None:
        return text
    return f'{text} {"channels-last" if channels_last else "NCHW"}'


@dataclasses.dataclass
class LayoutChoice:
    """What a net's measurement found: the memory layout of its plain precision, the
    speed of every choice timed, and what ``amp='auto'`` takes."""

    channels_last: bool     # the layout in fp32 (or the amp measured): True for NHWC
    speedup: float          # channels-last's measured speed over NCHW's (1.0: not timed)
    steps: int              # training steps the measurement ran
    device: str             # the device it was measured on
    key: str                # what it was measured for (architecture, batch, device, amp)
    speeds: dict | None = None  # rows/s of each choice timed, by label ('fp32 NCHW': 515.0);
    #                         None in records written before precisions were measured

    def __str__(self):
        if self.channels_last:
            text = (f'memory layout: channels-last ({self.speedup:.1f}x faster in '
                    f'{self.steps} steps)')
        elif self.speedup != 1.0 or not self.speeds:
            text = (f'memory layout: NCHW (channels-last {self.speedup:.2f}x as fast in '
                    f'{self.steps} steps; it needs {MARGIN}x)')
        else:
            text = f'measured in {self.steps} steps'
        if self.speeds:
            text += '; training rows/s: ' + ', '.join(f'{name} {speed:,.0f}' for name, speed
                                                      in self.speeds.items())
        return text

    def layout_for(self, amp):
        """Whether training in precision ``amp`` takes channels-last."""
        nchw, nhwc = (self.speeds or {}).get(label(amp, False)), \
            (self.speeds or {}).get(label(amp, True))
        if amp is None or nchw is None or nhwc is None:
            return self.channels_last
        return nhwc >= MARGIN * nchw

    def best_speed(self, amp):
        """The measured rows/s of precision ``amp`` in its chosen layout (None if not
        timed)."""
        speeds = self.speeds or {}
        return speeds.get(label(amp), speeds.get(label(amp, self.layout_for(amp))))

    def auto(self):
        """``amp='auto'``'s precision: a native one at least :data:`MARGIN` times as fast
        as fp32, else None (fp32)."""
        plain = self.best_speed(None)
        faster = [(speed, amp) for amp in ('bf16', 'fp16')
                  if (speed := self.best_speed(amp)) is not None and plain is not None
                  and speed >= MARGIN * plain]
        return max(faster)[1] if faster else None

    def as_dict(self):
        """Plain data for a file."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The choice :meth:`as_dict` wrote (None stays None; a record without
        ``speeds``, as older files hold, is read too); raises ValueError for anything
        else."""
        if data is None:
            return None
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict) or not (set(names[:5]) <= set(data) <= set(names)):
            raise ValueError(f'a memory layout record needs the keys {names}; got {data!r}')
        types = (bool, float, int, str, str, (dict, type(None)))
        if not all(isinstance(data.get(n), t) for n, t in zip(names, types)):
            raise ValueError(f'a memory layout record of the wrong types: {data!r}')
        speeds = data.get('speeds')
        if speeds is not None and not all(isinstance(k, str) and isinstance(v, float)
                                          for k, v in speeds.items()):
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


def _measured_amp(amp):
    """The ``amp`` a measurement is keyed by: ``'auto'`` shares fp32's (both time fp32
    and the native precisions)."""
    return None if amp == 'auto' else amp


def measure(net, amp=None, budget=BUDGET):
    """Time every choice :func:`offered` for ``amp`` on a copy of ``net.module``: both
    layouts in each precision for a net with filters, each precision for one without;
    returns a :class:`LayoutChoice`."""
    batches, amps = example_batches(net.graph, net.device), offered(net.device, amp)
    speeds, speedups, steps = {}, {}, 0
    for each in amps:
        autocast = _autocast(each, net.device)
        if has_feature_maps(net.module):
            timing = time_layouts(net.module, batches, net.batch_size, net.device, budget,
                                  autocast)
            nchw = 1 / timing.nchw      # rows/s; channels-last's from the paired median speedup,
            speeds[label(each, False)] = float(nchw)            # so that their ratio is it
            speeds[label(each, True)] = float(nchw * timing.speedup)
            speedups[each], steps = float(timing.speedup), steps + timing.steps
        else:
            seconds, count = time_training(net.module, batches, net.batch_size, net.device,
                                           budget, autocast=autocast, steps=True)
            speeds[label(each)], steps = float(1 / seconds), steps + count
    speedup = speedups.get(amps[0], 1.0)
    return LayoutChoice(speedup >= MARGIN, speedup, int(steps), str(net.device),
                        layout_key(net, _measured_amp(amp)), speeds)


def choose(net, amp=None, recorded=None, log=None):
    """The :class:`LayoutChoice` for training ``net`` with ``amp`` (None when there is
    nothing to choose: no convolution filters and one precision offered).

    Taken, in this order, from ``recorded`` (a resumed checkpoint's), the net's
    own ``memory_layout``, this process's earlier measurement of the same
    architecture, or measured now (``log(str(choice))`` then says what was
    found). The net keeps it through :meth:`~pydnn2.net.NN.speed_choice`.
    """
    key = layout_key(net, _measured_amp(amp))
    found = [c for c in (recorded, getattr(net, 'memory_layout', None), _CHOSEN.get(key))
             if c is not None and c.key == key]
    if found:
        return found[0]
    if not has_feature_maps(net.module) and len(offered(net.device, amp)) == 1:
        return None
    choice = _CHOSEN[key] = measure(net, amp)
    if log is not None:
        log(str(choice))
    return choice


def speed_choice(net, amp=None, recorded=None, log=None, across=None):
    """How ``net`` trains fastest: its :class:`LayoutChoice` (memory layout, and the
    measured speed of each precision the hardware offers), measured once and kept in
    ``net.memory_layout``; None when there is nothing to choose. See :func:`choose`
    (``recorded``: a resumed checkpoint's choice; ``log``: told what a new
    measurement found; ``across``: runs the choice on rank 0 for every rank)."""
    def decide():
        return choose(net, amp, recorded, log)
    choice = across(decide) if across is not None else decide()
    if choice is not None:
        net.memory_layout = choice
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


def settle(net, channels_last, amp=None, recorded=None, log=None, across=None):
    """``train``'s ``channels_last`` and ``amp`` options settled: ``(amp, channels_last)``
    with ``channels_last`` True or False (None: measured) and ``amp`` None, 'bf16' or
    'fp16' (``'auto'``: :meth:`LayoutChoice.auto`); the layout is applied to
    ``net.module``.

    ``across(function)``, when given, runs the choice where it should be made
    and returns its result (data-parallel training passes its strategy's
    :meth:`~pydnn2.train.strategy.Strategy.on_writer`: rank 0 measures, every rank
    takes its choice, so that all train alike).
    """
    if channels_last is None or amp == 'auto':
        choice = net.speed_choice(amp, recorded, log, across)
        if amp == 'auto':
            amp = choice.auto() if choice is not None else None
        if channels_last is None:
            channels_last = bool(choice is not None and choice.layout_for(amp))
    apply(net.module, channels_last)
    return amp, bool(channels_last)


def resolve(net, channels_last, amp=None, recorded=None, log=None, across=None):
    """:func:`settle`'s layout alone: True or False."""
    return settle(net, channels_last, amp, recorded, log, across)[1]


def adopt(net, choice):
    """Put a net rebuilt from a file in the layout of the ``choice`` recorded there,
    where it holds (same architecture, batch size and device), so that the net
    predicts as the one saved did."""
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
