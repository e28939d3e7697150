"""Child process of test_kill_resume.py and test_signals.py: trains a small
rotating-image net.

Usage: python resume_child.py RULE OUTPUT_DIR RESULT_FILE [--checkpoint] [--resume]
                              [--callbacks] [--slow] [--pause=EPOCH.BATCH:BEACON]

Writes the final weights to RESULT_FILE with torch.save and the history
(without the seconds) to RESULT_FILE.json when training ends. With
--callbacks, a HistoryLogger writes OUTPUT_DIR/history.csv and an
EarlyStopping ends the main phase early. With --pause, the child writes the
file BEACON after batch BATCH of epoch EPOCH and waits there for a signal, so
that the parent's signal lands at that very batch; --slow paces the batches
(for two children that must overlap). When a signal stops training
(TrainingInterrupted), prints the checkpoint's path and exits with
INTERRUPTED; when train refuses to start (ConfigError), prints the message
and exits with REFUSED.
"""

import json
import sys
import time

import numpy as np
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pause import PauseAt

RULES = {
    'sgd': lambda: nn.StochasticGradientDescent(nn.LearningRateDecay(0.05, 0.1)),
    'momentum': lambda: nn.Momentum(0.5, 0.9, nn.LearningRateDecay(0.02, 0.1)),
    'adam': lambda: nn.Adam(nn.LearningRateDecay(0.005, 0.1)),
    'adadelta': lambda: nn.AdaDelta(0.95, 1e-6, nn.LearningRateDecay(1.0, 0.1)),
}
EPOCHS = 6
INTERRUPTED, REFUSED = 3, 4


class Slow(nn.Callback):
    """Paces the batches, so that two children started together overlap."""

    def on_minibatch_end(self, net, logs):
        time.sleep(0.01)


def pause_callbacks(argv):
    """``[PauseAt(...)]`` for a ``--pause=EPOCH.BATCH:BEACON`` argument, else ``[]``."""
    for arg in argv:
        if arg.startswith('--pause='):
            point, beacon = arg[len('--pause='):].split(':', 1)
            epoch, batch = map(int, point.split('.'))
            return [PauseAt(epoch, batch, beacon)]
    return []


def images():
    """Digits drawn dark on white at varied sizes, as raw uint8 images."""
    x, y, _ = data.load_digits()
    rng = np.random.RandomState(0)
    raw = []
    for image in x[:480, 0]:
        scale = rng.randint(1, 4)
        raw.append((255 - image * 15).astype(np.uint8).repeat(scale, 0).repeat(scale, 1))
    return raw, y[:480]


def callbacks(output_dir):
    """A history file and early stopping: both must go on exactly after a resume."""
    return [nn.HistoryLogger(f'{output_dir}/history.csv'),
            nn.EarlyStopping('valid_loss', patience=1, min_delta=0.15, restore_best=False)]


def main(rule, output_dir, result, checkpoint=False, resume=False, with_callbacks=False,
         extra=()):
    torch.set_num_threads(1)
    rng = np.random.RandomState(11)
    raw, classes = images()
    sets = preprocess.split_training_data((raw, classes), 16, 70, 15, 15, rng=rng)
    pre = preprocess.Rotator360(sets, (10, 10), preprocess.StretchResizer(), rng,
                                rotation_range=(-30, 30), flip_lr=False, progress=False)
    net = nn.NN(pre, 'images', 10, 16, rng, name='kill', output_dir=output_dir,
                verbose=False)
    net.add_convolution(8, (3, 3), (2, 2))
    net.add_dropout(0.2)
    net.merge_data_channel('shapes')
    net.add_hidden(32)
    net.add_logistic()
    try:
        history = net.train(RULES[rule](), epochs=EPOCHS, final_epochs=1, restore_best=False,
                            checkpoint_every=1 if checkpoint else None,
                            resume=True if resume else None,
                            # pinned: the straight and the killed run are two processes,
                            # whose own measurements could choose different layouts
                            channels_last=False,
                            callbacks=list(extra) + (callbacks(output_dir) if with_callbacks
                                                     else []))
    except nn.ConfigError as exc:
        print(exc, flush=True)
        sys.exit(REFUSED)
    except nn.TrainingInterrupted as exc:
        print(exc.checkpoint, flush=True)
        sys.exit(INTERRUPTED)
    torch.save(net.module.state_dict(), result)
    with open(f'{result}.json', 'w') as f:
        json.dump({k: v for k, v in history.items() if k != 'seconds'}, f)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], sys.argv[3], '--checkpoint' in sys.argv,
         '--resume' in sys.argv, '--callbacks' in sys.argv,
         [Slow()] * ('--slow' in sys.argv) + pause_callbacks(sys.argv))
