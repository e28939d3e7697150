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
"""

import dataclasses
import math


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
