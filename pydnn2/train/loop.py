"""``train``: check the arguments, set the run up, and run the loop.

:func:`train` refuses bad arguments before anything changes, picks the
:class:`~pydnn2.train.strategy.Strategy` (torchrun's ranks, or one process),
claims the run's files (:mod:`pydnn2.train.runs`) and hands a
:class:`~pydnn2.train.trainer.Trainer` the pieces; the loop itself (step ->
epoch -> phase) is the trainer's.
"""

import os
import tempfile

from .. import rng as rngs
from ..errors import ConfigError, DataError, FileFormatError
from . import runs, strategy as strategies
from .config import TrainConfig
from .live import with_live_curves
from .rules import check_rule
from .trainer import Trainer


def check_output_dir(path):
    """Create ``path`` if needed and prove it writable, before any training."""
    path = path or '.'
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f'output_dir {path!r} is not writable ({exc.strerror}); choose '
                          'another folder before training') from None


def check_ready(net, updater, config):
    """Refuse to start unless the rule, the net and its data are ready."""
    check_rule(updater)
    net.check_complete()
    if not net.preprocessor.has_data():
        raise DataError('the preprocessor holds no data to train on (a loaded net keeps only '
                        'its statistics); attach sets with preprocessor.set_data(...)')
    net.check_data()                        # sets attached since the net was made, too
    net.graph.check_batch_size(net.batch_size)


def check_files(net, config):
    """Refuse to start unless the output folder is writable (or there is none:
    ``output_dir=None``, which writes no file) and a checkpoint to resume exists."""
    resume = config.resume
    if net.output_dir is None:
        wants = ('checkpoint_every' if config.checkpoint_every else
                 f'resume={resume!r}' if resume in (True, 'auto') else None)
        if wants:
            raise ConfigError(f'{wants} needs a folder for the run\'s files; received a net '
                              'with output_dir=None (give it an output_dir)')
    else:
        check_output_dir(net.output_dir)
    if resume not in (None, False, True, 'auto') and not os.path.isfile(os.fspath(resume)):
        raise FileFormatError(f'resume: checkpoint {os.fspath(resume)!r} does not exist')


def train(net, updater, epochs=200, final_epochs=0, l1_reg=0, l2_reg=0, config=None,
          **options):
    """Train ``net`` with the learning rule ``updater``.

    Each main epoch trains on a fresh (possibly augmented) training set,
    evaluates the validation set, and when the validation loss improves
    evaluates the test set and saves the net to
    ``<output_dir>/<name>_best_net.pt`` (without a validation set, the
    training loss decides). After each main epoch the annealer and the rule
    see its losses. After the main epochs the net gets the best weights back,
    unless ``final_epochs`` follow: as in pydnn, those train exactly that many
    epochs on train + valid + test from the last weights, at the rate the
    annealer chooses for them, without stepping the annealer or the momentum;
    the result is saved to ``<name>_final_net.pt``.

    Training is reproducible from the net's ``rng`` alone: shuffling has its
    own generator, and dropout draws from torch's global generators seeded
    from the net's ``rng`` inside ``train``, which gives them back to the
    caller as they were (:func:`pydnn2.rng.forked`).

    Parameters
    ----------
    net : NN
    updater : LearningRule
        StochasticGradientDescent, Momentum, Adam or AdaDelta.
    epochs, final_epochs : int
        Epochs of each phase, counting those done before a resumed checkpoint.
    l1_reg, l2_reg : float
        Penalties on the weights (not on biases, batch norm or PReLU slopes).
    config : TrainConfig, optional
        Every option at once (then ``epochs`` ... ``l2_reg`` and ``options``
        are ignored).
    **options
        The fields of :class:`~pydnn2.train.config.TrainConfig` and
        :class:`~pydnn2.train.config.Speed`:

        ``verbose`` (print the epoch table; default: the net's),
        ``progress`` (a progress bar within epochs longer than two seconds),
        ``restore_best`` (put the best weights back after the main phase:
        None, the default, does so unless final epochs follow; True always,
        False never), ``checkpoint_every`` (write
        ``<name>_checkpoint_<epoch>.pt`` every this many epochs),
        ``keep_checkpoints`` (how many of the newest to keep, 3),
        ``resume`` (a checkpoint path, or True for the newest of the run in
        ``output_dir``; the net, rule, preprocessor and data must be those it
        was written with: :mod:`pydnn2.train.compat`),
        ``accept_data_change`` (resume although the data's fingerprint
        differs), ``overwrite`` (delete the files of another run of this
        name in ``output_dir`` and start afresh, where otherwise ``train``
        refuses: :mod:`pydnn2.train.runs`), ``patience`` (stop the main phase after this
        many epochs without a better validation loss), ``eval_metric`` (a
        metric or list, evaluated on the validation set each main epoch and
        recorded as ``valid_<name>``), ``callbacks`` (a
        :class:`~pydnn2.train.callbacks.Callback` or a list of them), ``plot`` (live learning
        curves, redrawn in place every epoch in a notebook; a path also
        writes them there: :class:`~pydnn2.train.live.LiveCurves`), ``amp`` (None, 'bf16' or
        'fp16': forward passes under ``torch.autocast``), ``channels_last``
        (True: NHWC feature maps, False: NCHW; None, the default: the faster of
        the two for a net with convolutions, timed once per net:
        :mod:`pydnn2.model.layout`), ``compile`` (train through
        ``torch.compile(net.module)``), ``data_on_device`` (keep each epoch's
        set on the device, or stream batches from pinned host memory; by
        default on the device when it takes at most half its free memory).

    Returns
    -------
    pydnn2.train.history.History
        A dict of lists: one entry per epoch for each of ``HISTORY_KEYS`` (and
        each metric); it shows as the epoch table.

    Raises
    ------
    pydnn2.errors.TrainingInterrupted
        After Ctrl-C (SIGINT) or SIGTERM: the current batch finished,
        ``<name>_checkpoint_<epochs done>_interrupted.pt`` was written (its
        path is the exception's ``checkpoint``) and no later phase ran. A
        second signal stops at once (``KeyboardInterrupt``). Files already
        saved always stay.
    pydnn2.errors.ConfigError
        Before anything changes: another live process trains this name in
        this folder (``<name>.lock``), the folder holds another run's files,
        or the checkpoint to resume does not fit this net, rule or data.
    """
    if config is None:
        config = TrainConfig.from_options(epochs=epochs, final_epochs=final_epochs,
                                          l1_reg=l1_reg, l2_reg=l2_reg, **options)
    config = with_live_curves(config)
    check_ready(net, updater, config)
    strategy = strategies.select(net, config)      # under torchrun: the process group
    strategy.on_writer(lambda: check_files(net, config))     # (rank 0's folder alone)
    # identified, locked, claimed (by rank 0)
    with runs.OwnedRun(net, updater, config, strategy.on_writer) as run:
        updater.annealer.bind(updater)
        try:
            with rngs.forked(net.device):      # the caller's global torch generators stay theirs
                trainer = Trainer(net, updater, config, run, strategy)
                try:
                    return trainer.fit()
                finally:
                    trainer.close()
        finally:
            updater.annealer.release(updater)
