"""The training loop: step -> epoch -> phase -> train.

The loop is lean (DESIGN decision 5): batches are sliced from tensors that
already sit on the training device, losses and error counts accumulate on
the device and are read once per epoch, and the progress bar reads nothing
from the device. Each level is a small function returning plain data:
:func:`train_step` runs one batch, :func:`train_batches` the batches of an
epoch, :func:`run_epoch` one epoch with its evaluation (an
:class:`~pydnn2.train.session.EpochResult`), :func:`run_phase` the epochs
of the main or final phase, and :func:`train` checks its arguments and runs
both phases.
"""

import math
import os
import tempfile
import time

import torch
import torch.nn.functional as F

from .. import distributed, files, progress, rng as rngs
from ..errors import (ConfigError, DataError, FileFormatError, TrainingDivergedError,
                      TrainingInterrupted)
from ..model.modules import module_lock
from ..preprocess.sources import EpochPlan
from . import checkpoints, parallel, runs
from .callbacks import StopTraining
from .config import TrainConfig
from .live import with_live_curves
from .rules import LearningRule, set_learning_rate
from .session import EpochResult, EpochState, Session
from .signals import StopSignals


def train_step(session, batch, target):
    """One update on one batch; returns the logits and the (unpenalised) loss."""
    optimizer, scaler = session.optimizer, session.scaler
    with session.autocast():
        logits = session.model(batch)
        loss = F.cross_entropy(logits, target)
    total = loss + session.penalty() if session.penalised_loss else loss
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        total.backward()
        optimizer.step()
    else:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    return logits, loss.detach()


def _channels_last(batch):
    """A batch's 4-D channels (images) in channels-last memory order."""
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
            for k, v in batch.items()}


def _loss_slot(state, step, device):
    """Room in ``state.losses`` for batch ``step`` (a stream of unknown length grows it)."""
    if step >= len(state.losses):
        grown = torch.zeros(max(64, 2 * len(state.losses)), device=device)
        grown[:len(state.losses)] = state.losses
        state.losses = grown


def train_batches(session, batches, state):
    """Train on the epoch's batches (a :class:`~pydnn2.preprocess.sources.Batches` that
    starts at ``state.step``) until they end or a stop is requested.

    Stops early (leaving ``state.step`` at the batches done) when a stop was
    requested. Data-parallel, the batches are this rank's rows of each global
    batch, and the losses and error count are those of all ranks when this
    returns. Returns whether every batch ran.
    """
    net = session.net
    steps = batches.steps
    if state.losses is None:
        state.losses = torch.zeros(steps if steps is not None else 64, device=net.device)
    errors = torch.zeros((), device=net.device, dtype=torch.long)
    hooks = session.callbacks if session.callbacks.batch_hooks else None
    lock = module_lock(net.module)    # held by inference batches too (predict in a callback)
    with lock:
        net.module.train()
    bar = progress.progress_bar(steps, f'epoch {session.epoch + 1}', session.progress,
                                initial=state.step, delay=2.0)
    first = step = state.step
    rows = 0                         # rows trained here (a stream's last batch may be short)
    epoch, layout = session.epoch + 1, session.speed.channels_last
    batch_iter = iter(batches)
    finished = False
    while not (finished := steps is not None and step >= steps):
        if parallel.should_stop(session, step - first):
            break
        item = next(batch_iter, None)
        if item is None:                 # a stream of unknown length ended
            finished = True
            break
        batch, target = item
        if hooks:
            hooks('on_minibatch_begin', net, {'epoch': epoch, 'batch': step + 1})
        _loss_slot(state, step, net.device)
        with lock:
            logits, state.losses[step] = train_step(
                session, _channels_last(batch) if layout else batch, target)
        errors += (logits.argmax(1) != target).sum()
        rows += len(target)
        step += 1
        bar.update()
        if hooks:
            hooks('on_minibatch_end', net, {'epoch': epoch, 'batch': step,
                                            'loss': state.losses[step - 1]})
    bar.close()
    state.losses = state.losses[:step] if steps is None and finished else state.losses
    errors, rows = parallel.reduce_batches(session, state.losses, first, step, errors, rows)
    done = state.rows if state.rows is not None else first * session.global_batch
    state.step, state.errors, state.rows = step, state.errors + errors, done + rows
    return finished


def check_losses(losses, epoch):
    """The mean batch loss; raises :class:`TrainingDivergedError` at the first NaN/inf."""
    mean = losses.mean().item()
    if not math.isfinite(mean):
        bad = int(torch.nonzero(~torch.isfinite(losses))[0])
        raise TrainingDivergedError(
            f'the training loss became {losses[bad].item()} in epoch {epoch + 1}, batch '
            f'{bad + 1}; try a smaller learning rate (the best net so far is kept)')
    return mean


def start_epoch(session, phase, resumed=None):
    """The epoch's state and its batches (this rank's), rebuilt exactly when ``resumed``:
    the preprocessor's random state and the shuffle generator's state before the
    epoch, and the batches done, are the epoch's position."""
    net, pre = session.net, session.net.preprocessor
    if resumed is not None:
        state = EpochState(**resumed)
        pre.set_state(state.preprocessor)
        session.shuffle.set_state(state.shuffle)
        state.losses = state.losses.to(net.device)
    else:
        state = EpochState(phase, files.plain_tree(pre.get_state()), session.shuffle.get_state())
    plan = EpochPlan(batch_size=session.global_batch, device=torch.device(net.device),
                     shard=session.shard, order=session.shuffle, start=state.step,
                     resident=session.speed.data_on_device, num_classes=net.num_classes)
    return state, pre.source('train' if phase == 'main' else 'all').batches(plan)


def run_epoch(session, phase, resumed=None):
    """Train one epoch of ``phase``, evaluate it, record it in the history."""
    net, started = session.net, time.perf_counter()
    rate = session.rule.annealer.learning_rate
    state, batches = start_epoch(session, phase, resumed)
    if not train_batches(session, batches, state):
        return EpochResult(unfinished=state)
    row = dict(epoch=session.epoch + 1, phase=phase,
               train_loss=check_losses(state.losses, session.epoch),
               train_error=state.errors / state.rows, valid_loss=None,
               valid_error=None, test_loss=None, test_error=None, learning_rate=rate)
    if phase == 'main':
        evaluate_main(session, row)
    row['seconds'] = parallel.slowest(session, time.perf_counter() - started)
    session.keepers.update(row, net)
    session.record(row)
    return EpochResult(row=row)


def evaluate_main(session, row):
    """Validation every epoch; test set and best-net file when validation improves."""
    net, pre = session.net, session.net.preprocessor
    valid = pre.source('valid')
    row['valid_loss'], row['valid_error'] = parallel.evaluate_set(session, valid)
    if session.metrics and session.has_valid:
        values = parallel.metric_values(session, valid, session.metrics)
        row.update({f'valid_{k}': v for k, v in values.items()})
    if session.best.update(row, net):      # (by training loss when there is no validation set)
        row['test_loss'], row['test_error'] = parallel.evaluate_set(session, pre.source('test'))
        if distributed.is_writer():
            session.writer.submit(session.run.stamped(files.net_state(net, session.best.params)),
                                  session.best_file)


def notify_epoch_end(session, row):
    """The epoch-end callbacks; returns True when one asked to stop."""
    try:
        session.callbacks('on_epoch_end', session.net, dict(row))
    except StopTraining as stop:
        session.log(f'      stopped by a callback: {stop}')
        return True
    return False


def end_of_epoch(session, row):
    """Annealer, learning rule, patience and checkpoint after a finished epoch;
    returns True when the phase should stop. The final epochs step neither the
    annealer nor the rule (as in pydnn)."""
    rule, config = session.rule, session.config
    stop, message = False, None
    if row['phase'] == 'main':
        stop, message = rule.annealer.epoch_done(session.epoch, row['train_loss'],
                                                 row['valid_loss'], session.net)
        rule.epoch_done(session.epoch, row['train_loss'], session.optimizer)
    session.epoch += 1
    if message:
        session.log(f'      {message}')
    if config.patience and row['phase'] == 'main' and session.best.since >= config.patience:
        session.log(f'      no validation improvement in {config.patience} epochs: stopping')
        stop = True
    if config.checkpoint_every and session.epoch % config.checkpoint_every == 0:
        parallel.write_checkpoint(session)
    return stop


def run_phase(session, phase, epochs, resumed=None):
    """Run ``phase`` until ``epochs`` epochs of it are done (counting resumed ones),
    or the annealer, patience or a callback stops it, or a signal; returns the
    interrupted checkpoint's path after a signal, else None."""
    done = sum(1 for p in session.history['phase'] if p == phase)
    net = session.net
    try:
        while done < epochs:
            rate = session.rule.annealer.learning_rate
            set_learning_rate(session.optimizer, rate)
            session.callbacks('on_epoch_begin', net, {'epoch': session.epoch + 1,
                                                      'phase': phase, 'learning_rate': rate})
            result = run_epoch(session, phase, resumed)
            resumed = None
            if not result.finished:
                path = parallel.write_checkpoint(session, result.unfinished)
                session.log(f'interrupted: stopping training; resume from {path}')
                return path
            done += 1
            stopped = parallel.any_rank(session, notify_epoch_end(session, result.row))
            if end_of_epoch(session, result.row) or stopped:
                break
    except StopTraining as stop:
        session.log(f'      stopped by a callback: {stop}')
    return None


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
    if not isinstance(updater, LearningRule):
        raise ConfigError('updater must be a learning rule (StochasticGradientDescent, '
                          f'Momentum, Adam or AdaDelta); received {type(updater).__name__}')
    net.check_complete()
    if not net.preprocessor.has_data():
        raise DataError('the preprocessor holds no data to train on (a loaded net keeps only '
                        'its statistics); attach sets with preprocessor.set_data(...)')
    net.check_data()                        # sets attached since the net was made, too
    net.graph.check_batch_size(net.batch_size)


def check_files(net, config):
    """Refuse to start unless the output folder is writable and a checkpoint to resume
    exists."""
    check_output_dir(net.output_dir)
    resume = config.resume
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
    data_parallel = parallel.start(net, config)     # under torchrun: the process group
    distributed.on_writer(lambda: check_files(net, config))    # (rank 0's folder alone)
    with runs.OwnedRun(net, updater, config) as run:    # identified, locked, claimed (rank 0)
        updater.annealer.bind(updater)
        try:
            with rngs.forked(net.device):      # the caller's global torch generators stay theirs
                session = Session(net, updater, config, run, data_parallel)
                try:
                    return run_session(session)
                finally:
                    session.close()
        finally:
            updater.annealer.release(updater)


def run_session(session):
    """Resume if asked, then run both phases with the callbacks around them; raises
    :class:`TrainingInterrupted` when a signal stopped training."""
    net, config, run = session.net, session.config, session.run
    resumed = None
    if run.state is not None:
        resumed = checkpoints.restore(session, run.path, run.state)
        run.state = None                # (its tensors are not kept while training)
        session.log(f'resuming from {run.path} after {session.epoch} epochs')
    net.history = session.history
    session.callbacks('on_train_begin', net, {'epochs': config.epochs,
                                              'final_epochs': config.final_epochs,
                                              'epochs_done': session.epoch})
    with StopSignals(session):
        try:
            stopped_at = run_phases(session, resumed)
        except BaseException:
            session.writer.close()
            raise
        # the best net is on disk before train returns (on every rank)
        distributed.on_writer(session.writer.close)
    session.callbacks('on_train_end', net, {'history': session.history})
    if stopped_at:
        raise TrainingInterrupted(
            f'training stopped by {session.stop_signal} with {session.epoch} '
            f'epoch{"s" if session.epoch != 1 else ""} done and wrote {stopped_at!r}; '
            'train(..., resume=True) goes on from there',
            stopped_at, session.stop_signal, session.history)
    return session.history


def run_phases(session, resumed):
    """The main phase, the return to the best weights, then the final phase; returns
    the checkpoint to resume from when a signal stopped training, else None."""
    net, config = session.net, session.config
    in_final = resumed is not None and resumed['phase'] == 'final'
    restore = config.restore_best
    if restore is None:
        restore = not config.final_epochs     # final epochs go on from the last weights
    if not session.main_done and not in_final:
        try:
            stopped_at = run_phase(session, 'main', config.epochs, resumed)
        finally:
            if restore:
                session.best.restore(net)
        if stopped_at:
            return stopped_at
        session.main_done = True
        resumed = None
    if session.best.params is not None:
        session.log(f'best {session.best.monitor.replace("_", " ")} {session.best.best:.4f}; '
                    f'best net saved to {session.best_file}')
    if not config.final_epochs:
        return None
    if parallel.should_stop(session, 0):    # a signal came after the main phase's last batch
        return parallel.write_checkpoint(session)
    if not in_final:
        message = session.rule.annealer.final_epochs()
        if message:
            session.log(f'      {message}')
    stopped_at = run_phase(session, 'final', config.final_epochs, resumed)
    if not stopped_at:
        final = session.run.stamped(files.net_state(net))
        distributed.on_writer(lambda: files.atomic_save(final, session.final_file))
        session.log(f'final net saved to {session.final_file}')
    return stopped_at
