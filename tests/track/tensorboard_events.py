"""Reading TensorBoard event files back with tensorboard's own EventAccumulator."""

import numpy as np
import pytest

accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')


def load_events(log_dir):
    """The EventAccumulator of ``log_dir``, loaded (every image and scalar kept)."""
    events = accumulator.EventAccumulator(str(log_dir), size_guidance={'images': 0,
                                                                       'scalars': 0})
    events.Reload()
    return events


def scalars_by_tag(log_dir):
    """``{tag: [(step, float32 value), ...]}`` of every scalar in ``log_dir``."""
    events = load_events(log_dir)
    return {tag: [(e.step, np.float32(e.value)) for e in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}
