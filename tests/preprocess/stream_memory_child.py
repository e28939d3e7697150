"""Child process of test_streamed_memory.py: one epoch over a streamed image folder.

Usage: python stream_memory_child.py TRAIN_DIR HELD_OUT WORKERS OUTPUT_DIR

Builds ``DirectoryLabeledImageSet(TRAIN_DIR, stream=True)``, splits it so that the
validation and test sets hold HELD_OUT images each (evaluation batches are sized
to the device, not to the folder, so both runs evaluate alike), attaches a
Rotator360 at 96x96 reading with WORKERS DataLoader workers, trains a small conv
net for one epoch (its files in OUTPUT_DIR), and prints JSON: this process's peak
resident memory (VmHWM),
the largest peak of its finished children (the workers), the rows trained and
the bytes the decoded set would take in memory (raw images plus the 96x96 cache).
"""

import json
import resource
import sys

import numpy as np
import torch

from pydnn2 import neuralnet as nn
from pydnn2.data import DirectoryLabeledImageSet
from pydnn2.preprocess import Rotator360, StretchResizer, split_training_data

SHAPE = (96, 96)
BATCH = 64


def status_mib(field):
    """A field of /proc/self/status (kB) in MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024


def main(train_dir, held_out, workers, output_dir):
    torch.set_num_threads(1)
    data = DirectoryLabeledImageSet(train_dir, stream=True).build()
    n = len(data[1])
    held = 100.0 * held_out / n
    sets = split_training_data(data, BATCH, 100 - 2 * held, held, held)
    pre = Rotator360(sets, SHAPE, StretchResizer(), np.random.RandomState(0),
                     num_workers=workers, progress=False)
    net = nn.NN(pre, 'images', int(data[1].max()) + 1, BATCH, np.random.RandomState(0),
                verbose=False, device='cpu', output_dir=output_dir)
    net.add_convolution(8, (5, 5), (4, 4))
    net.merge_data_channel('shapes')
    net.add_hidden(32)
    net.add_logistic()
    history = net.train(nn.Adam(learning_rate=0.003), epochs=1, final_epochs=0)
    raw = sum(int(np.prod(pre._raw_shapes[s]['shapes'], axis=1).sum()) for s in pre._raw_shapes)
    print(json.dumps({
        'peak_mib': status_mib('VmHWM:'),
        'workers_peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        'rows': pre.num_rows('train'), 'valid_rows': pre.num_rows('valid'),
        'train_loss': history['train_loss'][-1],
        'decoded_mib': (raw + n * SHAPE[0] * SHAPE[1]) / 2 ** 20}))


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
