"""Child process of test_shard_memory.py: one epoch from a memmap, alone or as a rank.

Usage: python shard_memory_child.py write KIND PATH ROWS WIDTH
       python shard_memory_child.py train KIND PATH ROWS WIDTH BATCH OUTPUT_DIR RESULT

``write`` writes the file of KIND (in its own process: data_memory_child.write's
sparse rows, float32 or uint8). ``train`` makes the data of KIND (one of
:data:`KINDS`) from PATH, trains a 16-unit MLP one epoch, then predicts the
validation rows with ``shard=True``, and writes RESULT.rank<r>.json: the peak
resident memory (VmHWM), the bytes this process read (``rchar`` of
/proc/self/io) while training and while predicting, and what it predicted.
"""

import functools
import json
import os
import sys

import numpy as np
import torch

import data_memory_child
from pydnn2 import distributed, neuralnet as nn, preprocess


def bytes_read():
    """The bytes this process has read so far (read, pread and the like)."""
    for line in open('/proc/self/io'):
        if line.startswith('rchar:'):
            return int(line.split()[1])


class Reads(nn.Callback):
    """The bytes read between the start and the end of training."""

    def on_train_begin(self, net, logs):
        self.start = bytes_read()

    def on_train_end(self, net, logs):
        self.read = bytes_read() - self.start


def memmap(path, rows, width):
    """An ArrayPreprocessor over PATH opened read-only, train and valid sets cut as
    slices of it; the validation rows and classes, raw, to predict."""
    x = np.memmap(path, np.float32, 'r', shape=(rows, width))
    y = np.arange(rows) % 10
    cut = rows * 9 // 10
    pre = preprocess.ArrayPreprocessor(((x[:cut], y[:cut]), (x[cut:], y[cut:]), (x[:0], y[:0])))
    return pre, x[cut:], y[cut:]


def wide(path, rows, width):
    """:func:`memmap` of uint8 rows (an image file's bytes, each row read whole and made
    float32 in the batch: 5 bytes of memory per byte of a batch), served without
    standardising (no statistics pass over the file)."""
    x = np.memmap(path, np.uint8, 'r', shape=(rows, width))
    y = np.arange(rows) % 10
    cut = rows * 9 // 10
    pre = preprocess.ArrayPreprocessor(((x[:cut], y[:cut]), (x[cut:], y[cut:]), (x[:0], y[:0])),
                                       normalize=False)
    return pre, x[cut:], y[cut:]


#: The data a rank reads a share of, and how its file is written. A streamed image
#: folder joins here (issue 17's streaming: its per-rank figures), with
#: test_shard_memory.KINDS.
KINDS = {'memmap': memmap, 'wide': wide}
WRITERS = {'memmap': data_memory_child.write,
           'wide': functools.partial(data_memory_child.write, dtype=np.uint8)}


def train(kind, path, rows, width, batch, output_dir, result):
    torch.set_num_threads(1)
    pre, x, y = KINDS[kind](path, rows, width)
    net = nn.NN(pre, 'images', 10, batch, 0, output_dir=output_dir, verbose=False, device='cpu')
    net.add_hidden(16, batch_normalize=kind != 'wide')   # (batch norm: per-rank statistics)
    net.add_logistic()
    reads = Reads()
    history = net.train(nn.Adam(0.01), epochs=1, progress=False, callbacks=[reads])
    start = bytes_read()
    classes, _ = net.predict(x, shard=True)
    predict_read = bytes_read() - start
    with open(f'{result}.rank{distributed.rank()}.json', 'w') as f:
        json.dump({'peak': data_memory_child.status_bytes('VmHWM'), 'train_read': reads.read,
                   'predict_read': predict_read, 'data_bytes': os.path.getsize(path),
                   'valid_error': history['valid_error'][-1],
                   'predict_accuracy': float(np.mean(classes == y))}, f)


if __name__ == '__main__':
    if sys.argv[1] == 'write':
        WRITERS[sys.argv[2]](sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
              *sys.argv[7:])
