"""For the tests' child processes: the digits handed over in a file, so that a child
need not import scikit-learn (about 1.5 s a process), and training on one thread.

A child script run by its path puts this folder on ``sys.path`` first (tests import
it as they import ``conftest``'s neighbours)."""

import contextlib
import os

import numpy as np
import torch

NAME = 'digits.npz'


def save_digits(folder, digits):
    """Write ``digits`` (``(images, classes, file_indices)``) into ``folder``."""
    np.savez(os.path.join(folder, NAME), *digits)


def load_digits(folder):
    """The digits :func:`save_digits` wrote into ``folder``."""
    with np.load(os.path.join(folder, NAME)) as saved:
        return tuple(saved[f'arr_{i}'] for i in range(3))


@contextlib.contextmanager
def one_thread():
    """torch on one thread for the block, as a child runs (then as it was: a test
    process may be the child)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
