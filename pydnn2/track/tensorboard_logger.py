"""TensorBoardLogger: a training run's scalars, layer table and figures for TensorBoard.

Writes through ``torch.utils.tensorboard`` (the ``track`` extra:
``pip install pydnn2[track]``); look at it with ``tensorboard --logdir DIR``.
"""

import numpy as np

from .. import checks
from ..extras import require
from ..train.callbacks import Callback
from .common import check_figures, end_figures, epoch_scalars

#: The sets a row key can start with; ``valid_loss`` is shown as ``loss/valid``.
SETS = ('train', 'valid', 'test')
#: Tags of the row keys that name no set.
OTHER_TAGS = {'learning_rate': 'rule/learning_rate', 'momentum': 'rule/momentum',
              'seconds': 'time/epoch_seconds'}


def scalar_tag(key):
    """The TensorBoard tag of an epoch row key: ``<what>/<set>`` for a set's figure
    (so TensorBoard draws train, valid and test in one chart), else from
    :data:`OTHER_TAGS` (or ``epoch/<key>``).

    >>> scalar_tag('valid_error'), scalar_tag('valid_accuracy'), scalar_tag('seconds')
    ('error/valid', 'accuracy/valid', 'time/epoch_seconds')
    """
    head, _, rest = key.partition('_')
    if head in SETS and rest:
        return f'{rest}/{head}'
    return OTHER_TAGS.get(key, f'epoch/{key}')


def _image(figure):
    """A matplotlib figure as an RGB array ``(H, W, 3)`` of uint8."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLogger(Callback):
    """Log every epoch's figures to TensorBoard, with the layer table and, at the end,
    the confusion matrix and the worst mistakes.

    Each epoch's row becomes scalars at step ``epoch`` (see :func:`scalar_tag`):
    the training, validation and test loss and error, the metrics, the learning
    rate, the momentum of a :class:`~pydnn2.neuralnet.Momentum` rule and the
    epoch's seconds. Runs on the first process alone under torchrun.

    A resumed run purges what the interrupted one logged after its checkpoint
    (``SummaryWriter(purge_step=...)``): the epochs it trains again are shown
    once, with the values of the resumed run.

    Parameters
    ----------
    log_dir : str or os.PathLike
        The folder of the event files (one per run of ``train``; a resumed run
        adds its own file to the same folder).
    figures : bool
        At the end, draw the confusion matrix and the worst mistakes on the
        validation set (matplotlib, part of the ``track`` extra).

    Examples
    --------
    >>> net.train(nn.Adam(0.01), epochs=10,
    ...           callbacks=[TensorBoardLogger('runs/digits')])    # doctest: +SKIP
    """

    rank_zero_only = True

    def __init__(self, log_dir, figures=True):
        self.log_dir = checks.path(log_dir, 'log_dir', where='TensorBoardLogger')
        self.figures = bool(figures)
        self._writer = None

    def state_dict(self):
        """Nothing changes while it logs: a resume purges by the resumed epoch."""
        return {}

    def on_train_begin(self, net, logs):
        board = require('torch.utils.tensorboard', 'TensorBoardLogger', 'track', 'tensorboard')
        if self.figures:
            check_figures('TensorBoardLogger')
        done = logs.get('epochs_done', 0)
        self._writer = board.SummaryWriter(self.log_dir, purge_step=done + 1 if done else None)
        if not done:
            table = '\n'.join('    ' + line for line in repr(net).splitlines())
            self._writer.add_text('net/layers', table, 0)

    def on_epoch_end(self, net, logs):
        rule = self.session.rule if self.session is not None else None
        for key, value in epoch_scalars(logs, rule).items():
            self._writer.add_scalar(scalar_tag(key), value, logs['epoch'])
        self._writer.flush()

    def on_train_end(self, net, logs):
        if self.figures:
            history = logs['history']
            step = history['epoch'][-1] if history['epoch'] else 0
            figures, _ = end_figures(net)
            for name, figure in figures.items():
                self._writer.add_image(f'end/{name}', _image(figure), step, dataformats='HWC')
        self._writer.close()
        self._writer = None

    def on_train_error(self, net, logs):
        """The event file is closed with the epochs logged so far."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

