"""Child process of test_run_files.py: trains a small digits MLP named 'net' into a folder.

Usage: python run_files_child.py OUTPUT_DIR RESUME EPOCHS [--hang-in-checkpoint N MARKER]

RESUME is 'none', 'true' or 'auto'; a checkpoint is written every epoch. Exits 0
after training, and 3 after a pydnn2 error, which it prints. With
``--hang-in-checkpoint N MARKER`` the write of the N-th checkpoint stops half-way:
its temporary file holds a few bytes, MARKER is created, and the process waits to
be killed.
"""

import argparse
import signal
import sys

import numpy as np
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import Pydnn2Error


def hang_in_checkpoint(number, marker):
    """Make the ``number``-th checkpoint's ``torch.save`` write a few bytes and wait."""
    real, seen = torch.save, []

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get('kind') == 'checkpoint':
            seen.append(obj)
            if len(seen) == number:
                f.write(b'half a checkpoint')
                f.flush()
                open(marker, 'w').close()
                while True:
                    signal.pause()
        return real(obj, f, *args, **kwargs)

    torch.save = save


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('output_dir')
    parser.add_argument('resume', choices=('none', 'true', 'auto'))
    parser.add_argument('epochs', type=int)
    parser.add_argument('--hang-in-checkpoint', nargs=2, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.hang_in_checkpoint:
        hang_in_checkpoint(int(args.hang_in_checkpoint[0]), args.hang_in_checkpoint[1])
    sets = preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(3))
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32, np.random.RandomState(5),
                output_dir=args.output_dir, verbose=False, device='cpu')
    net.add_hidden(16)
    net.add_logistic()
    resume = {'none': None, 'true': True, 'auto': 'auto'}[args.resume]
    try:
        net.train(nn.Adam(0.01), epochs=args.epochs, checkpoint_every=1, resume=resume,
                  progress=False)
    except Pydnn2Error as exc:
        print(f'{type(exc).__name__}: {exc}')
        sys.exit(3)


if __name__ == '__main__':
    main()
