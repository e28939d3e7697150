"""The digits as the torch datasets a user brings: shared by the dataset tests and their
child processes (which import it from this folder).

``DigitItems`` is map-style, ``DigitStream`` an IterableDataset; both can augment
at random (a shift, noise, a flip of the noise's sign) drawing from torch's, numpy's
and Python's global generators, as user code does.
"""

import random

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from pydnn2 import data
from pydnn2 import neuralnet as nn

_DIGITS = None


def digits():
    """``(images (1797, 1, 8, 8) float32, classes)``, read once."""
    global _DIGITS
    if _DIGITS is None:
        images, classes, _ = data.load_digits()
        _DIGITS = images, classes
    return _DIGITS


def split(train=1257, valid=180, seed=0):
    """Row indices of train, valid and test (the rest), in a fixed shuffle."""
    order = np.random.RandomState(seed).permutation(len(digits()[1]))
    return order[:train], order[train:train + valid], order[train + valid:]


def augmented(image):
    """``image`` (1, 8, 8) shifted by a random pixel, with noise: draws from torch's,
    numpy's and Python's global generators."""
    shift = int(np.random.randint(-1, 2))
    sign = 1.0 if random.random() < 0.5 else -1.0
    return torch.roll(image, shift, dims=2) + sign * 0.2 * torch.rand(image.shape)


class DigitItems(Dataset):
    """The digits ``rows``: items ``(image (1, 8, 8), class)``, augmented if asked."""

    def __init__(self, rows, augment=False):
        self.rows, self.augment = np.asarray(rows), augment

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        images, classes = digits()
        image = torch.from_numpy(images[self.rows[index]])
        return (augmented(image) if self.augment else image), int(classes[self.rows[index]])


class DigitStream(IterableDataset):
    """The digits ``rows`` as a stream: shuffled each pass with ``torch.randperm`` (if
    ``shuffle``), augmented if asked. ``own_share``: yield only this worker's share of
    the stream (PyTorch's convention)."""

    def __init__(self, rows, shuffle=True, augment=False, own_share=False):
        self.rows, self.shuffle, self.augment = np.asarray(rows), shuffle, augment
        self.own_share = own_share

    def __iter__(self):
        images, classes = digits()
        order = torch.randperm(len(self.rows)) if self.shuffle else torch.arange(len(self.rows))
        if self.own_share:
            info = torch.utils.data.get_worker_info()
            if info is not None:
                order = order[info.id::info.num_workers]
        for k in order.tolist():
            image = torch.from_numpy(images[self.rows[k]])
            yield (augmented(image) if self.augment else image), int(classes[self.rows[k]])


def stack_collate(items):
    """A user's collate_fn: raw items ``(image, class)`` into ``(images, classes)``."""
    return (torch.stack([torch.as_tensor(x) for x, _ in items]),
            torch.tensor([int(y) for _, y in items]))


def demo_net(pre, batch_size=64, seed=1234, **options):
    """The README's first net (the digits CNN) over ``pre``."""
    net = nn.NN(pre, 'images', 10, batch_size, np.random.RandomState(seed), nn.relu,
                verbose=False, **options)
    net.add_convolution(32, (3, 3), (1, 1))       # (1, 8, 8) -> (32, 6, 6)
    net.add_convolution(64, (3, 3), (2, 2))       # -> (64, 2, 2)
    net.add_dropout(0.25)
    net.add_hidden(256)
    net.add_dropout()
    net.add_logistic()
    return net


def accuracy(net, rows):
    """The net's accuracy on the digits ``rows``."""
    images, classes = digits()
    predicted, _ = net.predict(images[rows])
    return float(np.mean(predicted == classes[rows]))


def adam():
    """The README's learning rule."""
    return nn.Adam(learning_rate=nn.LearningRateDecay(0.003, 0.05))
