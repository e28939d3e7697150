"""Child process of test_dataset_ranks.py: trains on an IterableDataset, alone or as one
rank of torchrun.

Usage: python dataset_ranks_child.py MODE OUTPUT_DIR RESULT

MODE 'whole': the digits as a stream that shuffles each pass, shared out by pydnn2
(shards='pydnn2'), 500 items (the last global batch 20 short of 32), an MLP trained
with SGD without dropout for 2 epochs; rank 0 (or the one process) saves the
weights to RESULT and every rank its history to RESULT.rank<r>.json.
MODE 'short': a stream that shards itself by rank (shards='dataset'), rank 1's
share 40 items short; every rank writes the DataError training raises to
RESULT.rank<r>.txt (exit 0), or exits 1 when none is raised.
"""

import json
import os
import sys

import numpy as np
import torch
from torch.utils.data import IterableDataset

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, 'preprocess'))
from digit_datasets import DigitItems, DigitStream, split

from pydnn2 import distributed
from pydnn2 import neuralnet as nn
from pydnn2.errors import DataError
from pydnn2.preprocess import DatasetPreprocessor


class RankShare(IterableDataset):
    """This rank's share of the digits (every W-th item); rank 1's 40 items short."""

    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        rank, world = distributed.rank(), distributed.world_size()
        share = list(DigitStream(self.rows, shuffle=False))[rank::world]
        yield from (share[:-40] if rank == 1 else share)


def net_over(pre, output_dir):
    net = nn.NN(pre, 'images', 10, 32, np.random.RandomState(7), name='ranks',
                output_dir=output_dir, verbose=False)
    net.add_hidden(64, batch_normalize=False)      # (batch statistics differ per rank)
    net.add_logistic()
    return net


def main(mode, output_dir, result):
    torch.set_num_threads(1)
    rank = distributed.rank()
    train, valid, _ = split(train=500, valid=100)
    if mode == 'short':
        pre = DatasetPreprocessor(RankShare(train), DigitItems(valid), num_workers=0,
                                  shards='dataset')
        try:
            net_over(pre, output_dir).train(nn.StochasticGradientDescent(0.05), epochs=1)
        except DataError as exc:
            with open(f'{result}.rank{rank}.txt', 'w') as f:
                f.write(str(exc))
            return 0
        return 1
    pre = DatasetPreprocessor(DigitStream(train, shuffle=True, augment=True),
                              DigitItems(valid), num_workers=0)
    net = net_over(pre, output_dir)
    history = net.train(nn.StochasticGradientDescent(0.05), epochs=2)
    if distributed.is_writer():
        torch.save(net.module.state_dict(), result)
    with open(f'{result}.rank{rank}.json', 'w') as f:
        json.dump({k: v for k, v in history.items() if k != 'seconds'}, f)
    return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:4]))
