"""The one memory model: what training and inference of a net hold in memory.

Each layer spec says how many bytes one row keeps from the forward pass for
the backward pass (``activation_bytes``: its output, plus pooling indices,
dropout masks, recurrent gates). From those:

- inference needs, per row, at most the bytes of every layer's output at
  once (:func:`inference_bytes_per_row`; a generous bound, since torch frees
  each activation as soon as the next layer has read it);
- a training step holds the weights and buffers, their gradients, the
  optimizer's state and the temporaries of its update (tensors the size of
  the parameters), every row's kept
  activations, and during the backward pass the gradients of the largest
  activation twice over (the one coming in and the one going out)
  (:func:`training_memory`).

``tests/model/test_memory.py`` checks the training figure against the peak
memory of real training steps on the CPU.

:func:`check_fits` refuses a layer whose parameters would not fit in the
memory left (:func:`available_bytes`) before they are allocated.
"""

import dataclasses
import math
import os

import torch

from ..errors import NetBuildError


@dataclasses.dataclass
class Memory:
    """Bytes of a training step, by what holds them."""

    weights: int          # parameters and buffers
    gradients: int        # one gradient per parameter
    optimizer: int        # the optimizer's state (slots per parameter)
    step: int             # temporaries of the optimizer's update
    activations: int      # what the forward pass keeps for the backward pass
    backward: int         # gradients of activations alive during the backward pass

    @property
    def total(self):
        """All of it together."""
        return (self.weights + self.gradients + self.optimizer + self.step + self.activations
                + self.backward)


def _layer_bytes(graph):
    """Each node's kept bytes per row (nodes outside the plan included)."""
    return [node.spec.activation_bytes(graph.incoming(node.inputs), node.out_shape)
            for node in graph.nodes]


def inference_bytes_per_row(graph):
    """Bytes one row needs during inference: every layer's kept bytes at once."""
    return max(1, sum(_layer_bytes(graph)))


def training_memory(graph, batch_size, optimizer_slots=2, step_temporaries=1):
    """The :class:`Memory` of one training step of ``batch_size`` rows, with an
    optimizer keeping ``optimizer_slots`` tensors per parameter and making
    ``step_temporaries`` more while it updates them (a learning rule's
    ``optimizer_slots`` and ``step_temporaries``: SGD 0 and 0, Momentum 1 and
    0, Adam and AdaDelta 2 and 1; the defaults are Adam's)."""
    module = graph.module
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    largest = max(4 * math.prod(node.out_shape) for node in graph.nodes)
    return Memory(weights=params + buffers, gradients=params,
                  optimizer=optimizer_slots * params, step=step_temporaries * params,
                  activations=batch_size * sum(_layer_bytes(graph)),
                  backward=2 * batch_size * largest)


def _meminfo_available():
    """Linux's estimate of the memory available to new allocations (MemAvailable), or None."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left():
    """What a cgroup (v2) memory limit leaves to this process's group, or None."""
    try:
        with open('/sys/fs/cgroup/memory.max') as limit, \
                open('/sys/fs/cgroup/memory.current') as used:
            top = limit.read().strip()
            return None if top == 'max' else int(top) - int(used.read())
    except (OSError, ValueError):
        return None


def available_bytes(device='cpu'):
    """Bytes free for new tensors on ``device``, or None when it cannot be told.

    On CUDA: what the driver reports free plus what PyTorch holds cached but
    unused. Elsewhere: the host's available memory (``MemAvailable`` on
    Linux, within a cgroup's limit), else its physical memory.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != 'cpu':
        return None
    known = [b for b in (_meminfo_available(), _cgroup_left()) if b is not None]
    if not known:
        try:
            known = [os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')]
        except (OSError, ValueError, AttributeError):
            return None
    return min(known)


def module_bytes(module):
    """Bytes of a module's parameters and buffers (of a module on the ``meta``
    device too: what it would take)."""
    return sum(t.numel() * t.element_size()
               for t in (*module.parameters(), *module.buffers()))


def check_fits(nbytes, device, call):
    """Raise :class:`~pydnn2.errors.NetBuildError` naming ``call`` when ``nbytes``
    of parameters would not fit in the memory left: the host's (a layer is made
    there first) and, on CUDA, the device's."""
    places = [torch.device('cpu')] + ([torch.device(device)]
                                      if torch.device(device).type == 'cuda' else [])
    for place in places:
        free = available_bytes(place)
        if free is not None and nbytes > free:
            raise NetBuildError(
                f'{call}: its parameters would take {nbytes:,} bytes '
                f'({nbytes / 2 ** 30:,.1f} GiB), more than the {free:,} bytes '
                f'({free / 2 ** 30:,.1f} GiB) of memory available on {place}; use fewer '
                'units, filters or inputs (e.g. pool or shrink the maps before a dense layer)')
