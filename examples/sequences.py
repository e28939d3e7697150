"""Sequence classifiers with pydnn2's recurrent layers (no download needed).

Two small tasks:

1. **Digits as sequences.** Each 8x8 digit of scikit-learn's digits is read
   row by row: 8 time steps of 8 features. An LSTM reads the rows and its
   last step's output feeds the logistic classifier. It reaches 98.3% test
   accuracy (at least 95%) in about 5 seconds on a CPU core.
2. **Spot the pattern.** Sequences of 20 integer tokens (a vocabulary of 12),
   generated here; a sequence is positive when token 3 is directly followed by
   token 7 somewhere in it. A lookup table embeds the tokens, an LSTM reads
   them and ``add_recurrent_sum`` adds its outputs over time before the
   classifier. It reaches 99.75% test accuracy in about a second.

Run it with ``.venv/bin/python examples/sequences.py``.
"""

import sys
import tempfile
import time

import numpy as np
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn

PATTERN = (3, 7)    # the token bigram that makes a sequence positive


def test_accuracy(net, pre):
    """The net's accuracy on the preprocessor's test set."""
    predicted, _ = net.predict(pre.get_raw_x()[2])
    return float(np.mean(predicted == pre.get_raw_y()[2]))


def digits_as_sequences(epochs=10, output_dir=None, verbose=True):
    """Train an LSTM on the digits read row by row; returns the test accuracy."""
    rng = np.random.RandomState(1234)
    images, classes, files = data.load_digits()               # (1797, 1, 8, 8)
    rows = images[:, 0]                                       # (1797, 8, 8): T=8, F=8
    sets = preprocess.split_training_data((rows, classes, files), 32, 70, 10, 20, rng=rng)
    pre = preprocess.ArrayPreprocessor(sets, channel='rows')  # rows of shape (8, 8)

    net = nn.NN(pre, 'rows', 10, 32, rng, name='digit_rows', verbose=verbose,
                output_dir=output_dir or tempfile.mkdtemp(prefix='pydnn2-sequences-'))
    net.add_lstm(64)                                          # (8, 8) -> (8, 64)
    net.add_recurrent_last()                                  # -> (64,)
    net.add_logistic()                                        # -> (10,)
    net.train(nn.Adam(learning_rate=0.01), epochs=epochs)
    return test_accuracy(net, pre)


def make_token_sequences(n, length=20, vocab_size=12, seed=0):
    """``(tokens (n, length) int64, classes (n,))``: half the rows hold ``PATTERN``
    (class 1), the other half never do (class 0)."""
    rng = np.random.RandomState(seed)
    tokens = rng.randint(0, vocab_size, (n, length))
    classes = np.arange(n) % 2
    for row, positive in zip(tokens, classes):
        while has_pattern(row):                               # clear chance occurrences
            row[rng.randint(length)] = rng.randint(vocab_size)
        if positive:
            at = rng.randint(length - 1)
            row[at:at + 2] = PATTERN
    return tokens.astype(np.int64), classes


def has_pattern(row):
    """Whether ``PATTERN`` occurs in the token sequence ``row``."""
    return bool(np.any((row[:-1] == PATTERN[0]) & (row[1:] == PATTERN[1])))


def spot_the_pattern(epochs=10, rows=2000, output_dir=None, verbose=True):
    """Train lookup table + LSTM + sum on token sequences; returns the test accuracy."""
    rng = np.random.RandomState(1234)
    tokens, classes = make_token_sequences(rows)
    sets = preprocess.split_training_data((tokens, classes), 50, 70, 10, 20, rng=rng)
    pre = preprocess.ArrayPreprocessor(sets, channel='tokens', token_channels=['tokens'])

    net = nn.NN(pre, 'tokens', 2, 50, rng, name='tokens', verbose=verbose,
                output_dir=output_dir or tempfile.mkdtemp(prefix='pydnn2-sequences-'))
    net.add_lookup_table(vocab_size=12, embedding_dim=8)      # (20,) -> (20, 8)
    net.add_lstm(16)                                          # -> (20, 16)
    net.add_recurrent_sum()                                   # -> (16,)
    net.add_logistic()                                        # -> (2,)
    net.train(nn.Adam(learning_rate=0.01), epochs=epochs)
    return test_accuracy(net, pre)


def main():
    torch.set_num_threads(1)    # nets this small run fastest on one thread, above all
    #                             when other processes share the cores
    started = time.perf_counter()
    accuracy = digits_as_sequences()
    print(f'\ndigits read as 8 steps of 8 features, LSTM: test accuracy {100 * accuracy:.2f}% '
          f'({time.perf_counter() - started:.1f} s)\n')
    middle = time.perf_counter()
    tokens = spot_the_pattern()
    print(f'\ntoken sequences, lookup table + LSTM + sum: test accuracy {100 * tokens:.2f}% '
          f'({time.perf_counter() - middle:.1f} s)')
    return accuracy, tokens


if __name__ == '__main__':
    sys.exit(0 if main()[0] >= 0.95 else 1)
