"""Child process of test_rank_agreement.py: one rank of torchrun training the digits MLP.

Usage: torchrun --nproc_per_node=2 agreement_child.py SCENARIO OUTPUT_DIR RESULT

- ``batch_norm``: the MLP with batch normalisation, 2 epochs; every rank then
  predicts the test set and saves the probabilities to RESULT.rank<r>.pt.
- ``fewer_rows``: rank 1 holds 32 training rows fewer than rank 0.
- ``other_rows``: rank 1 holds other rows of the same shape (another split).

Every rank writes RESULT.rank<r>.json: its history, or the error ``train``
raised (type and message), and exits 0 either way.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

from pydnn2 import data, distributed, preprocess
from pydnn2 import neuralnet as nn


def build(scenario, output_dir, rank):
    """The digits MLP (32 hidden units; batch norm in ``batch_norm``), global batch 32,
    on the data ``scenario`` gives rank ``rank``."""
    seed = 4 if scenario == 'other_rows' and rank == 1 else 3
    sets = preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(seed))
    if scenario == 'fewer_rows' and rank == 1:
        sets = (tuple(a[:-32] for a in sets[0]), *sets[1:])
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32, np.random.RandomState(5),
                name='agree', output_dir=output_dir, verbose=False)
    net.add_hidden(32, batch_normalize=scenario == 'batch_norm')
    net.add_logistic()
    return net, sets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('scenario')
    parser.add_argument('output_dir')
    parser.add_argument('result')
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ.get('RANK', '0'))
    net, sets = build(args.scenario, args.output_dir, rank)
    got = {'rank': rank}
    try:
        history = net.train(nn.StochasticGradientDescent(0.1), epochs=2, progress=False)
        got['history'] = {k: v for k, v in history.items() if k != 'seconds'}
    except Exception as exc:  # noqa: BLE001 - recorded for the test
        got['error'], got['message'] = type(exc).__name__, str(exc)
    if args.scenario == 'batch_norm' and 'history' in got:
        torch.save(torch.as_tensor(net.predict(sets[2][0])[1]),
                   f'{args.result}.rank{distributed.rank()}.pt')
    with open(f'{args.result}.rank{rank}.json', 'w') as f:
        json.dump(got, f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
