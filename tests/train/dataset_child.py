"""Child process of test_distributed_data.py: a DatasetPreprocessor run, alone or as a rank.

Usage: python dataset_child.py OUTPUT_DIR RESULT READS [--epochs N] [--resume PATH]
                               [--train-only]

Trains a digits MLP from map-style torch datasets (1024 training items: 32
global batches of 32, none left over; 256 validation and 256 test items) read
through one DataLoader worker per process, SGD, a checkpoint every epoch, and a
rank-0-only callback that evaluates the validation set each epoch (unsharded:
it must not wait for the other ranks). The training dataset appends every index
its ``__getitem__`` is asked for to READS/train.rank<r> (from the worker too); a
callback moves that file to READS/train.rank<r>.epoch<e> at each epoch's end.

After training, every rank predicts, evaluates, confuses and interprets (arrays,
named sets, a Dataset, a DataLoader with a collate_fn of its own) with
``shard=True`` and then alone with ``shard=False``, and saves what it got to
RESULT.rank<r>.pt; the sharded prediction's dataset logs its reads to
READS/predict.rank<r> (``--train-only`` skips all that). Rank 0 saves the final
weights to RESULT.
"""

import argparse
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pydnn2 import data, distributed
from pydnn2 import neuralnet as nn
from pydnn2.preprocess import DatasetPreprocessor

TRAIN, VALID, TEST = slice(0, 1024), slice(1024, 1280), slice(1280, 1536)


class Digits(Dataset):
    """Digits images as (x, y) items (or x alone), logging each index read to ``log``."""

    def __init__(self, rows, labelled=True, log=None):
        images, classes, _ = DIGITS
        self.x, self.y = images[rows], classes[rows]
        self.labelled, self.log = labelled, log

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        if self.log:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f'{index}\n'.encode())
            os.close(fd)
        x = torch.from_numpy(self.x[index])
        return (x, int(self.y[index])) if self.labelled else x


class EpochReads(nn.Callback):
    """Moves the training dataset's log aside at each epoch's end (one file per epoch)."""

    def __init__(self, log):
        self.log = log

    def state_dict(self):
        return {}                   # the path is this run's, not the checkpoint's

    def on_train_begin(self, net, logs):
        if os.path.exists(self.log):        # the reads of the first item and statistics
            os.remove(self.log)

    def on_epoch_end(self, net, logs):
        os.replace(self.log, f'{self.log}.epoch{logs["epoch"]}')


class ValidOnRankZero(nn.Callback):
    """Evaluates the validation set on rank 0 alone, as a rank_zero_only callback may."""

    rank_zero_only = True

    def __init__(self):
        self.accuracies = []

    def on_epoch_end(self, net, logs):
        self.accuracies.append(net.evaluate('valid', nn.Accuracy()))


def pad_collate(items):
    """A collate_fn of the user's own: ``(x (b, 64), y)`` from ``(x, y)`` items."""
    return (torch.stack([x.reshape(-1) for x, _ in items]).reshape(-1, 1, 8, 8),
            torch.tensor([y for _, y in items]))


def inferences(net, log, shard):
    """Every prediction, sharded or not, as tensors; the prediction dataset logs its
    reads to ``log``."""
    images, classes, _ = DIGITS
    out = {}
    out['array_classes'], out['array_p'] = net.predict(images[1280:], shard=shard)
    _, out['dataset_p'] = net.predict(Digits(slice(1280, 1797), labelled=False, log=log),
                                      shard=shard)
    loader = DataLoader(Digits(slice(1280, 1797)), batch_size=50, collate_fn=pad_collate,
                        num_workers=1)
    _, out['loader_p'] = net.predict(loader, shard=shard)
    out['test_metrics'] = net.evaluate('test', [nn.Accuracy(), nn.LogLoss()], shard=shard)
    out['dataset_accuracy'] = net.evaluate(Digits(TEST), nn.Accuracy(), shard=shard)
    out['valid_outputs'] = net.get_outputs('valid', shard=shard)
    matrices = net.get_confusion_matrices(shard=shard)
    out['confusions'] = [m for m, _ in matrices]
    out['mistakes'] = [torch.tensor(mistakes).reshape(-1, 3) for _, mistakes in matrices]
    interp = net.interpret('valid', shard=shard)
    out['interpret_p'], out['interpret_losses'] = interp.probabilities, interp.losses
    out['interpret_confusion'] = interp.confusion
    return {k: [torch.as_tensor(np.asarray(v)) for v in value] if isinstance(value, list)
            else torch.as_tensor(np.asarray(value)) for k, value in out.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('output_dir')
    parser.add_argument('result')
    parser.add_argument('reads')
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--resume', default=None)
    parser.add_argument('--train-only', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank = distributed.rank()
    log = os.path.join(args.reads, f'train.rank{rank}')
    pre = DatasetPreprocessor(Digits(TRAIN, log=log), Digits(VALID), Digits(TEST), num_workers=1)
    net = nn.NN(pre, 'images', 10, 32, np.random.RandomState(5), name='ds',
                output_dir=args.output_dir, verbose=False)
    net.add_hidden(32, batch_normalize=False)
    net.add_logistic()
    on_zero = ValidOnRankZero()
    history = net.train(nn.StochasticGradientDescent(0.1), epochs=args.epochs,
                        checkpoint_every=1, progress=False, resume=args.resume,
                        callbacks=[EpochReads(log), on_zero])
    results = {} if args.train_only else {
        'sharded': inferences(net, os.path.join(args.reads, f'predict.rank{rank}'), True),
        'whole': inferences(net, None, False)}
    results['history'] = torch.tensor(history['train_loss'], dtype=torch.float64)
    results['rank_zero_accuracies'] = torch.tensor(on_zero.accuracies, dtype=torch.float64)
    torch.save(results, f'{args.result}.rank{rank}.pt')
    if distributed.is_writer():
        torch.save(net.module.state_dict(), args.result)


DIGITS = data.load_digits()

if __name__ == '__main__':
    main()
