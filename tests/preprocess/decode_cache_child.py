"""Child process of test_decode_cache.py: a streamed folder trained through a decode
cache, alone or as one rank of torchrun.

Usage: python decode_cache_child.py TRAIN_DIR CACHE_DIR OUTPUT_DIR

Trains a small conv net 2 epochs on TRAIN_DIR streamed (one worker per process),
``Rotator360(..., decode_cache=CACHE_DIR)``; rank 0 writes the epochs trained to
OUTPUT_DIR/epochs.json.
"""

import json
import os
import sys

import numpy as np

from pydnn2 import distributed
from pydnn2 import neuralnet as nn
from pydnn2.data import DirectoryLabeledImageSet
from pydnn2.preprocess import Rotator360, StretchResizer, split_training_data


def main(train_dir, cache_dir, output_dir):
    sets = split_training_data(DirectoryLabeledImageSet(train_dir, stream=True).build(), 8,
                               60, 20, 20)
    pre = Rotator360(sets, (16, 16), StretchResizer(), np.random.RandomState(3), num_workers=1,
                     decode_cache=cache_dir)
    net = nn.NN(pre, 'images', 4, 8, np.random.RandomState(0), verbose=False, device='cpu',
                output_dir=output_dir)
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_hidden(16)
    net.add_logistic()
    history = net.train(nn.Adam(0.01), epochs=2, channels_last=False, progress=False)
    if distributed.is_writer():
        with open(os.path.join(output_dir, 'epochs.json'), 'w') as f:
            json.dump(history['epoch'], f)


if __name__ == '__main__':
    main(*sys.argv[1:4])
