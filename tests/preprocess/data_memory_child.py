"""Child process of test_data_memory.py: the peak memory of one training epoch.

Usage: python data_memory_child.py write PATH ROWS WIDTH
       python data_memory_child.py train KIND ROWS WIDTH [PATH]

``write`` makes a float32 file of ROWS x WIDTH (in its own process), each row's
first SIGNAL columns filled and the rest left a hole. ``train`` builds the
data (KIND ``memory``: float32 arrays made here; ``memmap``: PATH opened
read-only), cuts train and valid sets as slices of it (split_training_data
would shuffle a copy), an ArrayPreprocessor over them, a 16-unit MLP, trains
one epoch with a checkpoint, and prints JSON: the data's bytes and the
process's peak resident memory (VmHWM).
"""

import json
import os
import sys

import numpy as np
import torch

from pydnn2 import neuralnet as nn, preprocess

CHUNK = 4096
SIGNAL = 1024           # columns written of each row of a file (4 KiB: one page)


def status_bytes(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024


def fill(x, rows, width, first=0):
    """Class-dependent rows: row i (``first + i`` of a file) holds (i % 10) plus a little
    noise."""
    noise = np.random.RandomState(0).rand(CHUNK, width).astype(np.float32)
    for start in range(0, rows, CHUNK):
        stop = min(rows, start + CHUNK)
        x[start:stop] = noise[:stop - start] + (np.arange(first + start, first + stop)
                                                % 10)[:, None]


def write(path, rows, width, dtype=np.float32):
    """The file: every row's first SIGNAL columns filled (as :func:`fill` fills them, in
    ``dtype``), the rest left a hole (zeros). Each row is still read whole (pread copies
    a hole's zeros as it copies data, so the reading process's memory is what it would
    be); the disk is spared writing and reading back gigabytes, which held every other
    test's fsyncs meanwhile. Written with pwrite: stores through a mapping allocate the
    whole file on some file systems (ext4 here), holes and all."""
    signal, size = min(width, SIGNAL), np.dtype(dtype).itemsize
    with open(path, 'wb') as f:
        f.truncate(rows * width * size)
        for start in range(0, rows, CHUNK):     # (CHUNK divides start: fill's noise rows)
            block = np.empty((min(rows, start + CHUNK) - start, signal), dtype)
            fill(block, len(block), signal, first=start)
            if signal == width:                 # whole rows: one write
                os.pwrite(f.fileno(), block.tobytes(), start * width * size)
            else:
                for i, row in enumerate(block):
                    os.pwrite(f.fileno(), row.tobytes(), (start + i) * width * size)


def data(kind, rows, width, path):
    if kind == 'memmap':
        return np.memmap(path, np.float32, 'r', shape=(rows, width))
    x = np.empty((rows, width), np.float32)
    fill(x, rows, width)
    return x


def train(kind, rows, width, path=None):
    torch.set_num_threads(1)
    x = data(kind, rows, width, path)
    y = np.arange(rows) % 10
    cut = rows * 9 // 10                 # the sets as slices of x, as a user's own split
    sets = ((x[:cut], y[:cut]), (x[cut:], y[cut:]), (x[:0], y[:0]))
    pre = preprocess.ArrayPreprocessor(sets)
    net = nn.NN(pre, 'images', 10, 256, 0, output_dir=f'out_{kind}_{rows}', verbose=False,
                device='cpu')
    net.add_hidden(16)
    net.add_logistic()
    history = net.train(nn.Adam(0.01), epochs=1, checkpoint_every=1, progress=False)
    print(json.dumps({'data_bytes': int(rows * width * 4), 'peak': status_bytes('VmHWM'),
                      'valid_error': history['valid_error'][-1]}))


if __name__ == '__main__':
    if sys.argv[1] == 'write':
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:])
