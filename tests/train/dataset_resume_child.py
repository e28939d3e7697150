"""Child process of test_dataset_kill_resume.py: trains the digits CNN on a torch dataset
that augments at random, read by 2 DataLoader workers.

Usage: python dataset_resume_child.py KIND OUTPUT_DIR RESULT_FILE [--resume] [--stall FILE]

KIND is 'map' (a map-style Dataset) or 'stream' (an IterableDataset that shuffles
each pass). A checkpoint is written after every epoch. Writes the final weights to
RESULT_FILE with torch.save and the history (without the seconds) to
RESULT_FILE.json when training ends. With --stall, after batch 5 of epoch 2 the
child writes FILE and waits until FILE.go exists (the parent kills it, or signals
it and then lets it go on). When a signal stops training, prints the checkpoint's
path and exits with INTERRUPTED.
"""

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, 'preprocess'))
from digit_datasets import DigitItems, DigitStream, adam, demo_net, split

from pydnn2 import neuralnet as nn
from pydnn2.preprocess import DatasetPreprocessor

INTERRUPTED = 3


class Stall(nn.Callback):
    """After batch 5 of epoch 2: say so in a file, then wait for the parent's word."""

    def __init__(self, path):
        self.path = path

    def on_minibatch_end(self, net, logs):
        if self.path is None or (logs['epoch'], logs['batch']) != (2, 5):
            return
        with open(self.path + '.tmp', 'w') as f:
            f.write(str(os.getpid()))
        os.replace(self.path + '.tmp', self.path)
        deadline = time.monotonic() + 120
        while not os.path.exists(self.path + '.go') and time.monotonic() < deadline:
            time.sleep(0.01)

    def state_dict(self):
        return {}


def main(kind, output_dir, result, resume=False, stall=None):
    torch.set_num_threads(1)
    train, valid, test = split(train=512, valid=128)
    sets = ((DigitItems(train, augment=True) if kind == 'map'
             else DigitStream(train, shuffle=True, augment=True)),
            DigitItems(valid), DigitItems(test[:128]))
    pre = DatasetPreprocessor(*sets, num_workers=2)
    net = demo_net(pre, batch_size=32, name='data', output_dir=output_dir)
    try:
        history = net.train(adam(), epochs=2, final_epochs=1, checkpoint_every=1,
                            resume=True if resume else None, channels_last=False,
                            callbacks=[Stall(stall)])
    except nn.TrainingInterrupted as exc:
        print(exc.checkpoint, flush=True)
        sys.exit(INTERRUPTED)
    torch.save(net.module.state_dict(), result)
    with open(f'{result}.json', 'w') as f:
        json.dump({k: v for k, v in history.items() if k != 'seconds'}, f)


if __name__ == '__main__':
    args = sys.argv[1:]
    stall = args[args.index('--stall') + 1] if '--stall' in args else None
    main(args[0], args[1], args[2], '--resume' in args, stall)
