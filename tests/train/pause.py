"""PauseAt: the synchronisation point the kill and signal tests' children share."""

import builtins
import os
import signal

from pydnn2 import neuralnet as nn

_OPEN = builtins.open     # the beacon is the test's file, not one training writes (a
                          # child may replace open to make training's writes fail)


class PauseAt(nn.Callback):
    """After batch ``batch`` of epoch ``epoch``, writes ``beacon`` and waits for a
    signal: the synchronisation point of the parent that sends it."""

    def __init__(self, epoch, batch, beacon):
        self.epoch, self.batch, self.beacon = epoch, batch, beacon

    def on_minibatch_end(self, net, logs):
        if (logs['epoch'], logs['batch']) == (self.epoch, self.batch):
            with _OPEN(f'{self.beacon}.part', 'w') as f:
                f.write(str(os.getpid()))
            os.replace(f'{self.beacon}.part', self.beacon)
            signal.pause()          # SIGKILL ends here; SIGTERM/SIGINT's handler returns

    def state_dict(self):
        """Nothing to checkpoint: a restarted or resumed run has no pause."""
        return {}
