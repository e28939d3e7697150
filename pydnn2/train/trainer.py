"""The training loop: step -> epoch -> phase, as methods of one :class:`Trainer`.

A :class:`Trainer` holds the pieces one call of ``train`` works with and
runs the loop with them:

- the :class:`~pydnn2.train.strategy.Strategy` (one process, or the ranks of
  torchrun: the rank's batches, figures every rank agrees on, votes, rank-0
  writes), which the loop asks and never asks whether training is parallel;
- the :class:`~pydnn2.train.precision.Precision` (autocast, scaler, memory
  layout, compile), which runs each update;
- the :class:`~pydnn2.train.stop.StopRequest` everything that stops training sets;
- the callbacks, and the :class:`~pydnn2.train.session.Session`, the run's
  changing state that checkpoints hold.

The loop is lean: batches come from the preprocessor's batch sources already
on the training device, losses and error counts accumulate on the device and
are read once per epoch, and the progress bar reads nothing from the device.
:meth:`Trainer.train_batches` runs the batches of an epoch,
:meth:`Trainer.run_epoch` one epoch with its evaluation,
:meth:`Trainer.run_phase` the epochs of the main or final phase and
:meth:`Trainer.run_phases` both and :meth:`Trainer.fit` the whole run
(:func:`pydnn2.train.loop.train` checks the
arguments and runs them).
"""

import math
import os
import time

import torch

from .. import files, messages, progress, rng as rngs
from ..errors import FileFormatError, TrainingDivergedError, TrainingInterrupted
from ..evaluate import as_metrics
from ..files import EXTENSION, BackgroundSaver
from ..model import layout
from ..model.modules import module_lock
from ..preprocess.sources import EpochPlan
from . import checkpoints
from .best import BestNet
from .callbacks import CallbackList, EarlyStopping, EpochTable
from .precision import Precision
from .rules import set_learning_rate
from .session import EpochResult, EpochState, Session, penalised_weights
from .signals import StopSignals
from .stop import StopRequest
from .strategy import SingleProcess


def check_losses(losses, epoch):
    """The mean batch loss; raises :class:`TrainingDivergedError` at the first NaN/inf."""
    mean = losses.mean().item()
    if not math.isfinite(mean):
        bad = int(torch.nonzero(~torch.isfinite(losses))[0])
        raise TrainingDivergedError(
            f'the training loss became {losses[bad].item()} in epoch {epoch + 1}, batch '
            f'{bad + 1}; try a smaller learning rate (the best net so far is kept)')
    return mean


def _loss_slot(state, step, device):
    """Room in ``state.losses`` for batch ``step`` (a stream of unknown length grows it)."""
    if step >= len(state.losses):
        grown = torch.zeros(max(64, 2 * len(state.losses)), device=device)
        grown[:len(state.losses)] = state.losses
        state.losses = grown


class Trainer:
    """One call of ``train``: the pieces it works with, and the loop.

    Parameters
    ----------
    net : pydnn2.NN
    rule : pydnn2.train.rules.LearningRule
    config : pydnn2.train.config.TrainConfig
    run : pydnn2.train.runs.Run, optional
        The run's identity, which every file it writes carries.
    strategy : pydnn2.train.strategy.Strategy, optional
        How the ranks share the work (default: :class:`SingleProcess`), set up.

    Attributes
    ----------
    stop : pydnn2.train.stop.StopRequest
        The run's one stop request (a callback may ``ask`` it).
    session : pydnn2.train.session.Session
        The run's changing state.
    """

    def __init__(self, net, rule, config, run=None, strategy=None):
        self.net, self.rule, self.config, self.run = net, rule, config, run
        self.strategy = strategy = strategy or SingleProcess()
        writer = strategy.is_writer
        self.verbose = writer and (net.verbose if config.verbose is None else config.verbose)
        self.progress = self.verbose if config.progress is None else writer and config.progress
        recorded = layout.recorded_in(run.state if run else None)
        self.precision = Precision.settle(net, config.speed, recorded, self.log,
                                          strategy.on_writer)
        self.model = self.precision.prepare(
            strategy.wrap(net.module, net.device, config.sync_batch_norm))
        self.saves = BackgroundSaver()       # the best net's file, saved in the background
        self.stop = StopRequest()
        self.metrics = as_metrics(config.eval_metric) if config.eval_metric is not None else []
        self.penalised = penalised_weights(net.module)
        # one parameter group: every parameter follows the same rule (l1/l2 are in the loss)
        optimizer = rule.make_optimizer([p for p in net.module.parameters() if p.requires_grad])
        folder = net.output_dir
        self.best_file, self.final_file = (
            (None, None) if folder is None else
            (os.path.join(folder, f'{net.name}_{kind}{EXTENSION}') for kind in ('best_net',
                                                                               'final_net')))
        has_valid = net.preprocessor.num_rows('valid') != 0     # (None: a stream)
        best = BestNet('valid_loss' if has_valid else 'train_loss', self.best_file,
                       self.saves.submit if writer else None)
        self.callbacks = CallbackList(self._callbacks(config, best), self, writer, self.stop,
                                      self.log)
        self.session = Session(rule, optimizer, rngs.seed_from(net.rng), best,
                               [m.name for m in self.metrics], self.callbacks)
        rule.annealer.attach(best)
        # dropout masks follow the net's rng (each rank its own); train() runs inside
        # rngs.forked, so the caller's global torch generators come back as they were
        with module_lock(net.module):     # (net_size in another thread forks them too)
            rngs.seed_torch(strategy.dropout_seed(rngs.seed_from(net.rng)), net.device)

    def _callbacks(self, config, best):
        """The table (when verbose), the user's callbacks, then what ``patience`` and
        ``checkpoint_every`` add (last, so that a checkpoint's callbacks line up)."""
        table = [EpochTable(progress.write)] if self.verbose else []    # (stdout, as ever)
        added = []
        if config.patience:
            added.append(EarlyStopping(best.monitor, config.patience, restore_best=False,
                                       phase='main'))
        if config.checkpoint_every:
            added.append(checkpoints.ModelCheckpoint(config.checkpoint_every,
                                                     config.keep_checkpoints))
        return table + list(config.callbacks or []) + added

    # -- what callbacks written for the old session read -----------------------------------

    optimizer = property(lambda self: self.session.optimizer, doc='The rule\'s optimizer.')
    history = property(lambda self: self.session.history, doc='The run\'s history so far.')
    epoch = property(lambda self: self.session.epoch, doc='Epochs done.')
    best = property(lambda self: self.session.best,
                    doc='The run\'s :class:`~pydnn2.train.best.BestNet`, the keeper of the best '
                        'weights.')
    keepers = best          # (its former name: it answers get(monitor, mode, min_delta))
    stop_signal = property(lambda self: self.stop.signal,
                           doc='``\'SIGINT\'`` or ``\'SIGTERM\'`` once one asked to stop.')

    def close(self):
        """Let go of the wrapped model (and its gradient hooks) and of the strategy's
        changes to the module."""
        self.model = None
        self.strategy.close()

    def log(self, message):
        """Say ``message`` on rank 0: a record of the ``pydnn2.train`` logger, shown on
        stdout beside the progress bars when verbose (:mod:`pydnn2.messages`)."""
        if self.strategy.is_writer:
            messages.say(message, show=self.verbose, name='pydnn2.train')

    def penalty(self):
        """l1 * sum|W| + l2 * sum W^2 over the weights (see :func:`penalised_weights`)."""
        total, l1, l2 = 0.0, self.config.l1_reg, self.config.l2_reg
        if l1:
            total = total + l1 * sum(w.abs().sum() for w in self.penalised)
        if l2:
            total = total + l2 * sum(w.pow(2).sum() for w in self.penalised)
        return total

    def train_step(self, batch, target):
        """One update on one batch; returns the logits and the (unpenalised) loss."""
        penalised = self.config.l1_reg or self.config.l2_reg
        return self.precision.step(self.model, self.session.optimizer, batch, target,
                                   self.penalty if penalised else None)

    # -- checkpoints -------------------------------------------------------------------------

    def rng_state(self):
        """Every random generator training draws from, as plain data (a collective when
        several ranks train: every rank's torch generators)."""
        state = rngs.snapshot(self.net, self.session.shuffle)
        ranks = self.strategy.rank_rng_states()
        if ranks is not None:
            state['ranks'] = ranks
        return state

    def state_dict(self):
        """The run's checkpointed state: the session's, the fp16 loss scale's and the
        generators' (a collective)."""
        return {**self.session.state_dict(), 'precision': self.precision.state_dict(),
                'rng': self.rng_state()}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` (each rank its own torch generators); a checkpoint
        written before the loss scale was kept starts the scale afresh."""
        self.session.load_state_dict(state)
        self.precision.load_state_dict(state.get('precision', {}))
        rng = state['rng']
        with module_lock(self.net.module):
            self.strategy.restore_rng_states(rng, self.net.device)
        rngs.restore(rng, self.net, self.session.shuffle, torch_globals=False)

    def resume(self, path, state):
        """Load checkpoint ``state`` (read from ``path`` and accepted by
        :func:`pydnn2.train.compat.check`); returns the unfinished epoch's state (a dict)
        or None."""
        try:
            self.net.module.load_state_dict(state['net']['weights'])
            self.load_state_dict(state['session'])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise FileFormatError(f'{path!r} could not be restored: {type(exc).__name__}: '
                                  f'{exc}') from None
        return state['epoch_state']

    def write_checkpoint(self, unfinished=None, keep=None):
        """Write a checkpoint (rank 0, with every rank's generators), keeping the newest
        ``keep`` of the run (None: ``keep_checkpoints``); every rank returns its path
        once it is written. None, writing nothing, for a net without an output folder."""
        if self.net.output_dir is None:
            return None
        state = self.state_dict()
        keep = self.config.keep_checkpoints if keep is None else keep
        return self.strategy.on_writer(lambda: checkpoints.write(
            self.net, self.run, state, self.session.epoch, keep, unfinished))

    # -- the loop ----------------------------------------------------------------------------

    def train_batches(self, batches, state):
        """Train on the epoch's batches (a :class:`~pydnn2.preprocess.sources.Batches`
        that starts at ``state.step``) until they end or the ranks agree to stop.

        Leaves ``state.step`` at the batches done; the losses and error count are
        those of all ranks when this returns. Returns whether every batch ran.
        """
        net, steps = self.net, batches.steps
        if state.losses is None:
            state.losses = torch.zeros(steps if steps is not None else 64, device=net.device)
        errors = torch.zeros((), device=net.device, dtype=torch.long)
        hooks = self.callbacks if self.callbacks.batch_hooks else None
        lock = module_lock(net.module)   # held by inference batches too (predict in a callback)
        with lock:
            net.module.train()
        epoch = self.session.epoch + 1
        bar = progress.progress_bar(steps, f'epoch {epoch}', self.progress,
                                    initial=state.step, delay=2.0)
        first = step = state.step
        rows = 0                     # rows trained here (a stream's last batch may be short)
        batch_iter = iter(batches)
        while not (finished := steps is not None and step >= steps):
            if self.strategy.should_stop(self.stop, step - first):
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
                logits, state.losses[step] = self.train_step(batch, target)
            errors += (logits.argmax(1) != target).sum()
            rows += len(target)
            step += 1
            bar.update()
            if hooks:
                hooks('on_minibatch_end', net, {'epoch': epoch, 'batch': step,
                                                'loss': state.losses[step - 1]})
        bar.close()
        state.losses = state.losses[:step] if steps is None and finished else state.losses
        errors, rows = self.strategy.reduce_batches(state.losses, first, step, errors, rows)
        done = state.rows if state.rows is not None else first * self.global_batch
        state.step, state.errors, state.rows = step, state.errors + errors, done + rows
        return finished

    @property
    def global_batch(self):
        """Rows of each global batch (over all ranks)."""
        return self.strategy.global_batch(self.net.batch_size, self.config.per_rank_batch)

    def start_epoch(self, phase, resumed=None):
        """The epoch's state and its batches (this rank's), rebuilt exactly when
        ``resumed``: the preprocessor's random state and the shuffle generator's state
        before the epoch, and the batches done, are the epoch's position."""
        net, pre, shuffle = self.net, self.net.preprocessor, self.session.shuffle
        if resumed is not None:
            state = EpochState(**resumed)
            pre.set_random_state(state.preprocessor)
            shuffle.set_state(state.shuffle)
            state.losses = state.losses.to(net.device)
        else:
            state = EpochState(phase, files.plain_tree(pre.random_state()), shuffle.get_state())
        plan = EpochPlan(batch_size=self.global_batch, device=torch.device(net.device),
                         shard=self.strategy.shard, order=shuffle, start=state.step,
                         resident=self.config.speed.data_on_device,
                         num_classes=net.num_classes)
        return state, pre.source('train' if phase == 'main' else 'all').batches(plan)

    def run_epoch(self, phase, resumed=None):
        """Train one epoch of ``phase``, evaluate it, record it in the history."""
        session, started = self.session, time.perf_counter()
        rate = self.rule.annealer.learning_rate
        state, batches = self.start_epoch(phase, resumed)
        with batches:                        # a pass left part-way lets its workers go
            if not self.train_batches(batches, state):
                return EpochResult(unfinished=state)
        row = dict(epoch=session.epoch + 1, phase=phase,
                   train_loss=check_losses(state.losses, session.epoch),
                   train_error=state.errors / state.rows, valid_loss=None,
                   valid_error=None, test_loss=None, test_error=None, learning_rate=rate)
        if phase == 'main':
            self.evaluate_main(row)
        row['seconds'] = self.strategy.slowest(time.perf_counter() - started)
        session.best.update(row, self.net)
        session.record(row)
        return EpochResult(row=row)

    def evaluate_main(self, row):
        """Validation every epoch; test set and best-net file when validation improves."""
        net, pre, strategy = self.net, self.net.preprocessor, self.strategy
        valid = pre.source('valid')
        row['valid_loss'], row['valid_error'] = strategy.evaluate(net, valid)
        if self.metrics and pre.num_rows('valid') != 0:
            values = strategy.metric_values(net, valid, self.metrics)
            row.update({f'valid_{k}': v for k, v in values.items()})
        best = self.session.best
        if best.update(row, net):      # (by training loss when there is no validation set)
            row['test_loss'], row['test_error'] = strategy.evaluate(net, pre.source('test'))
            best.save(self.run.stamped, lambda params: files.net_state(net, params))

    def end_of_epoch(self, row):
        """The epoch-end callbacks (``patience``'s EarlyStopping among them), annealer,
        learning rule and the checkpoint hook after a finished epoch; returns True when
        the ranks agree the phase should stop (a signal's request is left for the next
        batch, which writes the interrupted checkpoint). The final epochs step neither
        the annealer nor the rule (as in pydnn)."""
        session, stop = self.session, self.stop
        self.callbacks('on_epoch_end', self.net, dict(row))
        if row['phase'] == 'main':
            asked, message = self.rule.annealer.epoch_done(
                session.epoch, row['train_loss'], row['valid_loss'], self.net)
            self.rule.epoch_done(session.epoch, row['train_loss'], session.optimizer)
            if message:
                self.log(f'      {message}')
            if asked:
                stop.ask(message or 'the annealer')
        session.epoch += 1
        self.callbacks('on_checkpoint', self.net, {'epoch': row['epoch'], 'phase': row['phase'],
                                                   'epochs_done': session.epoch})
        return self.strategy.should_stop(stop, 0) and not stop.interrupts

    def run_phase(self, phase, epochs, resumed=None):
        """Run ``phase`` until ``epochs`` epochs of it are done (counting resumed ones), or
        a stop request ends it; returns the interrupted checkpoint's path after a signal
        (``''`` when there is no folder to write it in), else None."""
        session, net = self.session, self.net
        done = sum(1 for p in session.history['phase'] if p == phase)
        while done < epochs:
            rate = self.rule.annealer.learning_rate
            set_learning_rate(session.optimizer, rate)
            self.callbacks('on_epoch_begin', net, {'epoch': session.epoch + 1,
                                                   'phase': phase, 'learning_rate': rate})
            result = self.run_epoch(phase, resumed)
            resumed = None
            if not result.finished:
                if not self.stop.interrupts:      # a callback's request: the phase ends
                    break
                path = self.write_checkpoint(result.unfinished)
                self.log(f'interrupted: stopping training; resume from {path}' if path else
                         'interrupted: stopping training (output_dir=None: no checkpoint)')
                return path or ''
            done += 1
            if self.end_of_epoch(result.row):
                break
        self.stop.phase_done()
        return None

    def fit(self):
        """Resume if the run holds a checkpoint, then run both phases with the callbacks
        around them; returns the history, or raises :class:`TrainingInterrupted` when a
        signal stopped training."""
        net, config, run = self.net, self.config, self.run
        resumed = None
        if run.state is not None:
            resumed = self.resume(run.path, run.state)
            run.state = None                # (its tensors are not kept while training)
            self.log(f'resuming from {run.path} after {self.session.epoch} epochs')
        net.history = self.session.history
        try:
            self.callbacks('on_train_begin', net, {'epochs': config.epochs,
                                                   'final_epochs': config.final_epochs,
                                                   'epochs_done': self.session.epoch})
            with StopSignals(self.stop, self.log):
                try:
                    stopped_at = self.run_phases(resumed)
                except BaseException:
                    self.saves.close()
                    raise
                # the best net is on disk before train returns (on every rank)
                self.strategy.on_writer(self.saves.close)
        except BaseException as error:
            # the callbacks release what they hold (a tracking run is marked failed)
            self.callbacks.failed(net, {'error': error, 'history': self.session.history})
            raise
        self.callbacks('on_train_end', net, {'history': self.session.history})
        if stopped_at is not None:
            epochs = self.session.epoch
            wrote = (f'wrote {stopped_at!r}; train(..., resume=True) goes on from there'
                     if stopped_at else 'wrote no checkpoint (output_dir=None)')
            raise TrainingInterrupted(
                f'training stopped by {self.stop.signal} with {epochs} '
                f'epoch{"s" if epochs != 1 else ""} done and {wrote}',
                stopped_at or None, self.stop.signal, self.session.history)
        return self.session.history

    def run_phases(self, resumed):
        """The main phase, the return to the best weights, then the final phase; returns
        the checkpoint to resume from when a signal stopped training, else None."""
        net, config, session = self.net, self.config, self.session
        in_final = resumed is not None and resumed['phase'] == 'final'
        restore = config.restore_best
        if restore is None:
            restore = not config.final_epochs     # final epochs go on from the last weights
        if not session.main_done and not in_final:
            try:
                stopped_at = self.run_phase('main', config.epochs, resumed)
            finally:
                if restore:
                    session.best.restore(net)
            if stopped_at is not None:
                return stopped_at
            session.main_done = True
            resumed = None
        if session.best.params is not None:
            saved = f'; best net saved to {self.best_file}' if self.best_file else ''
            self.log(f'best {session.best.monitor.replace("_", " ")} '
                     f'{session.best.best:.4f}{saved}')
        if not config.final_epochs:
            return None
        if self.strategy.should_stop(self.stop, 0):   # a signal after the main phase's end
            return self.write_checkpoint() or ''
        return self.run_final(resumed if in_final else None)

    def run_final(self, resumed):
        """The final phase, then the final net's file; returns the interrupted
        checkpoint's path after a signal, else None."""
        if resumed is None:
            message = self.rule.annealer.final_epochs()
            if message:
                self.log(f'      {message}')
        stopped_at = self.run_phase('final', self.config.final_epochs, resumed)
        if stopped_at is None and self.final_file is not None:
            final = self.run.stamped(files.net_state(self.net))
            self.strategy.on_writer(lambda: files.atomic_save(final, self.final_file))
            self.log(f'final net saved to {self.final_file}')
        return stopped_at
