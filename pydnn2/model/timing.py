"""Timing real training steps on a copy of a net's module.

:func:`time_training` is ``net_size``'s calibration: seconds per row of
training steps (forward, backward, SGD) in one memory layout.
:func:`time_layouts` times the same steps in NCHW and in channels-last
(NHWC feature maps), in alternating windows, for
:mod:`pydnn2.model.layout`'s choice. Both work on a copy of the module
without the user's hooks, hold the module's
:func:`~pydnn2.model.modules.module_lock`, and draw their random rows and
dropout masks inside :func:`pydnn2.rng.forked`: the module (weights, buffers,
modes) and every random generator are left as they were, so they may run
in the middle of training, from a callback or another thread.
"""

import contextlib
import copy
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from .. import rng as rngs
from .layers import TOKENS
from .modules import module_lock


@dataclasses.dataclass
class LayoutTiming:
    """What :func:`time_layouts` measured."""

    nchw: float             # seconds per row of training in NCHW
    channels_last: float    # seconds per row in channels-last
    speedup: float          # channels-last's speed over NCHW's (median of paired windows)
    steps: int              # training steps run, both layouts and the warm-up together


def channels_last_rows(x):
    """A batch's 4-D channels (images) in channels-last memory order, others as they are."""
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
            for k, v in x.items()}


def example_batches(graph, device):
    """``make(rows) -> (channels, classes)``: random rows of each of ``graph``'s
    inputs (token 0 for token channels) on ``device``, all of class 0."""
    inputs = {n.args['channel']: n for n in graph.nodes if n.op == 'input'}

    def rows_of(node, rows):
        if node.dtype == TOKENS:
            return torch.zeros(rows, *node.out_shape, dtype=torch.long, device=device)
        return torch.randn(rows, *node.out_shape, device=device)

    def make(rows):
        return ({c: rows_of(n, rows) for c, n in inputs.items()},
                torch.zeros(rows, dtype=torch.long, device=device))

    return make


def bare_copy(module, device, channels_last=False):
    """A copy of ``module`` in training mode on ``device`` (its 4-D weights in
    channels-last order when asked), without the hooks a user may have put on
    the original (they should not see the timing steps)."""
    module = copy.deepcopy(module).to(device).train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    module.to(memory_format=layout)
    for sub in module.modules():
        for hooks in (sub._forward_hooks, sub._forward_pre_hooks, sub._backward_hooks,
                      sub._backward_pre_hooks):
            hooks.clear()
    return module


def _stepper(module, make_batch, batch_size, channels_last=False, autocast=None):
    """A function running one SGD step of ``module`` on one random batch."""
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1e-6)
    x, y = make_batch(batch_size)
    if channels_last:
        x = channels_last_rows(x)
    autocast = autocast or contextlib.nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(module(x).flatten(1), y)   # y is all zeros: a valid class
        loss.backward()
        opt.step()

    return step


def _window(step, device, budget, min_steps, max_steps=None):
    """Run ``step`` for about ``budget`` seconds (at least ``min_steps``, at most
    ``max_steps`` times); returns ``(seconds, steps)``."""
    steps, started = 0, time.perf_counter()
    max_steps = max_steps or float('inf')
    while steps < min_steps or (time.perf_counter() - started < budget and steps < max_steps):
        step()
        steps += 1
    _sync(device)
    return time.perf_counter() - started, steps


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def time_training(module, make_batch, batch_size, device, budget=1.0, channels_last=False,
                  autocast=None, steps=False):
    """Seconds per row of training steps (forward, backward, SGD) on a copy of
    ``module``, in channels-last order when asked, the forward passes under
    ``autocast`` (a context factory) when given; with ``steps``, ``(seconds per row,
    steps run)``.

    ``module`` itself (weights, buffers, train/eval modes, hooks) is not
    touched, and torch's global generators, which the random rows and dropout
    draw from, are left as they were; it holds the module's
    :func:`~pydnn2.model.modules.module_lock`, so ``net_size`` may run in the
    middle of training, from a callback or another thread.
    """
    with module_lock(module), rngs.forked(device):
        step = _stepper(bare_copy(module, device, channels_last), make_batch, batch_size,
                        channels_last, autocast)
        for _ in range(2):
            step()
        _sync(device)
        windows, count = [], 2  # the median of several short windows shrugs off bursts of load
        for _ in range(5):
            seconds, n = _window(step, device, budget / 5, min_steps=2, max_steps=20)
            windows.append(seconds / (n * batch_size))
            count += n
        return (statistics.median(windows), count) if steps else statistics.median(windows)


def time_layouts(module, make_batch, batch_size, device, budget=0.5, autocast=None,
                 rounds=5):
    """Training steps on two copies of ``module``, one in NCHW and one in
    channels-last, timed in alternating windows (A B A B ..., ``rounds`` each,
    about ``budget`` seconds in all after two warm-up steps each, at least one
    step a window, each window after one untimed step, which warms the caches
    the other layout's window left cold); returns a :class:`LayoutTiming`.

    ``autocast`` (a context factory) wraps the forward passes as training
    does under ``amp``. Like :func:`time_training`, it leaves ``module`` and
    every random generator as they were.
    """
    with module_lock(module), rngs.forked(device):
        steps = {nhwc: _stepper(bare_copy(module, device, nhwc), make_batch, batch_size,
                                nhwc, autocast) for nhwc in (False, True)}
        for step in steps.values():
            step()
            step()
        _sync(device)
        windows, count = {False: [], True: []}, 4
        for _ in range(rounds):
            for nhwc, step in steps.items():     # neighbours in time: a burst of load cancels
                step()                   # untimed: caches warm again after the other layout
                _sync(device)
                seconds, n = _window(step, device, budget / (2 * rounds), min_steps=1)
                windows[nhwc].append(seconds / (n * batch_size))
                count += n + 1
    speedup = statistics.median(a / b for a, b in zip(windows[False], windows[True]))
    return LayoutTiming(statistics.median(windows[False]), statistics.median(windows[True]),
                        speedup, count)
