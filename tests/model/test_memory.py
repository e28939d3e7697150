"""The memory model against the peak memory of real training steps on the CPU.

Each case runs in a fresh process (memory_child.py) with glibc's mmap
threshold fixed at 64 KiB, so that every large tensor is its own mapping
and freeing it returns the memory at once: the peak resident size then
measures what training holds, not the allocator's caching.
"""

import json
import os
import subprocess
import sys

import pytest

from pydnn2.model.memory import inference_bytes_per_row, training_memory

CHILD = os.path.join(os.path.dirname(__file__), 'memory_child.py')
needs_proc = pytest.mark.skipif(not os.path.exists('/proc/self/clear_refs'),
                                reason='needs Linux /proc to reset the peak RSS')


@needs_proc
@pytest.mark.parametrize('kind, batch, rule', [
    ('cnn', 256, 'adam'), ('cnn', 64, 'sgd'), ('bn', 256, 'momentum'), ('bn', 64, 'adadelta'),
    ('mlp', 256, 'sgd'), ('mlp', 64, 'adam')])
@pytest.mark.slow
def test_training_memory_is_within_30_percent_of_the_measured_peak(kind, batch, rule):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, CHILD, kind, str(batch), rule], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures['measured'] > 1_000_000                 # megabytes, not noise
    assert 0.7 <= figures['model'] / figures['measured'] <= 1.3, figures


def test_training_memory_adds_up_its_parts(small_net):
    net = small_net()
    params = 4 * sum(p.numel() for p in net.module.parameters())
    small, large = training_memory(net.graph, 8, 2, 1), training_memory(net.graph, 80, 0, 0)
    assert small.gradients == params and small.optimizer == 2 * params and small.step == params
    assert large.optimizer == large.step == 0
    assert large.activations == 10 * small.activations > 0
    assert small.total == (small.weights + small.gradients + small.optimizer + small.step
                           + small.activations + small.backward)
    # inference: every node's kept bytes of one row, as training keeps them per row
    assert inference_bytes_per_row(net.graph) * 8 == small.activations
