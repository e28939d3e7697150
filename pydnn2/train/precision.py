"""How the training steps compute: autocast precision and its scaler, memory layout, compile.

A :class:`Precision` is settled once per run from ``train``'s speed options
(:class:`~pydnn2.train.config.Speed`) by :meth:`Precision.settle`:

- ``amp``: None (fp32), ``'bf16'`` or ``'fp16'`` (forward passes under
  ``torch.autocast``; fp16 with a ``GradScaler``), or ``'auto'``: bf16 where
  the hardware computes it natively and it measured at least
  :data:`~pydnn2.model.layout.MARGIN` times as fast as fp32, else fp32;
- ``channels_last``: True, False, or None (measured);
- ``compile``: train through ``torch.compile``.

The measurement is the net's (:meth:`~pydnn2.net.NN.speed_choice`, once per
net, recorded in its files and checkpoints; a resumed run takes its
checkpoint's), made by rank 0 for every rank.

>>> precision = Precision('cpu')
>>> precision.amp, precision.channels_last, precision.scaler is None
(None, False, True)
>>> str(Precision('cpu', 'bf16', channels_last=True))
'bf16 autocast, channels-last'
"""

import contextlib
import functools

import torch
import torch.nn.functional as F

from ..model import layout

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


class Precision:
    """The autocast precision, memory layout and compilation of a run's training steps.

    Parameters
    ----------
    device : str or torch.device
        The device the net trains on.
    amp : {None, 'bf16', 'fp16'}
        The autocast precision (None: fp32).
    channels_last : bool
        Feature maps (and batches) in channels-last memory order.
    compile : bool
        Train through ``torch.compile(model)``.
    """

    def __init__(self, device, amp=None, channels_last=False, compile=False):
        self.device = torch.device(device)
        self.amp, self.channels_last, self.compile = amp, bool(channels_last), bool(compile)
        dtype = DTYPES.get(amp)
        self._autocast = (functools.partial(torch.autocast, self.device.type, dtype)
                          if dtype else contextlib.nullcontext)
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == 'fp16' else None

    @classmethod
    def settle(cls, net, speed, recorded=None, log=None, across=None):
        """The precision of a run of ``net`` with the speed options ``speed``: what is
        left to measure (``channels_last=None``, ``amp='auto'``) is settled by the net's
        measurement (``recorded``: a resumed checkpoint's; ``log``: told what a new
        measurement found; ``across``: makes the choice on rank 0 for every rank); the
        layout is applied to ``net.module``."""
        if torch.device(net.device).type == 'cuda':
            torch.backends.cudnn.benchmark = True
        amp, channels_last = layout.settle(net, speed.channels_last, speed.amp, recorded, log,
                                           across)
        return cls(net.device, amp, channels_last, speed.compile)

    def __str__(self):
        parts = [f'{self.amp} autocast' if self.amp else 'fp32',
                 'channels-last' if self.channels_last else 'NCHW']
        return ', '.join(parts + (['compiled'] if self.compile else []))

    def autocast(self):
        """The context the forward passes run in."""
        return self._autocast()

    def prepare(self, model):
        """The model the steps call: compiled when asked."""
        return torch.compile(model) if self.compile else model

    def batch(self, channels):
        """A batch's 4-D channels (images) in channels-last order when training in it."""
        if not self.channels_last:
            return channels
        return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                for k, v in channels.items()}

    def step(self, model, optimizer, batch, target, penalty=None):
        """One update on one batch: forward (under autocast), cross-entropy loss (plus
        ``penalty()`` when given), backward (scaled under fp16) and the optimizer's step.
        Returns the logits and the unpenalised loss, detached."""
        with self.autocast():
            logits = model(self.batch(batch))
            loss = F.cross_entropy(logits, target)
        total = loss + penalty() if penalty is not None else loss
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            total.backward()
            optimizer.step()
        else:
            self.scaler.scale(total).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        return logits, loss.detach()

    def state_dict(self):
        """The fp16 loss scale's state (empty otherwise), for checkpoints."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
