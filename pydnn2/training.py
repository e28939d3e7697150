"""The training loop: epochs, evaluation, best-net saving, checkpoints, the epoch table.

The loop is lean (DESIGN decision 5): batches are sliced from tensors that
already sit on the training device, losses and error counts accumulate on
the device and are read once per epoch, and the progress bar reads nothing
from the device. It is split into small functions: :func:`train_batches`
runs the batches of one epoch, :func:`run_epoch` one epoch with its
evaluation, :func:`run_phase` the epochs of one phase (main or final), and
:func:`train` checks the arguments and runs both phases.
"""

import contextlib
import dataclasses
import functools
import math
import numbers
import os
import signal
import tempfile
import threading
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoint, io
from .callbacks import CallbackList, EpochTable, StopTraining
from .errors import ConfigError, DataError, FileFormatError, TrainingDivergedError
from .evaluate import device_set, evaluate_set, metric_values
from .learning import LearningRule, set_learning_rate
from .metrics import as_metrics
from .net import seed_from

HISTORY_KEYS = ('epoch', 'phase', 'train_loss', 'train_error', 'valid_loss', 'valid_error',
                'test_loss', 'test_error', 'learning_rate', 'seconds')


@dataclasses.dataclass
class EpochState:
    """Where an unfinished epoch stands: enough to rebuild it and continue."""

    phase: str                  # 'main' or 'final'
    preprocessor: dict          # the preprocessor's state before it made the epoch's set
    shuffle: torch.Tensor       # the shuffle generator's state before the epoch's order
    step: int = 0               # batches done
    losses: torch.Tensor = None  # their losses
    errors: int = 0             # their misclassified rows

    def as_dict(self):
        """Plain data for a checkpoint."""
        return {k: (v.cpu() if isinstance(v, torch.Tensor) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class Speed:
    """How training runs on the device (none of it changes what is learned much)."""

    amp: str = None               # None, 'bf16' or 'fp16': mixed precision with autocast
    channels_last: bool = False   # feature maps in NHWC (1.6x faster CNN training on 2-core CPU)
    compile: bool = False         # torch.compile the module for the training steps
    data_on_device: bool = None   # None: keep sets on the device when they fit

    def check(self):
        if self.amp not in (None, 'bf16', 'fp16'):
            raise ConfigError(f"amp must be None, 'bf16' or 'fp16'; received {self.amp!r}")
        return self


class Session:
    """What one call of :func:`train` works with: the net, its optimizer, options."""

    def __init__(self, net, rule, l1_reg=0, l2_reg=0, verbose=False, progress=False,
                 checkpoint_every=None, keep_checkpoints=3, patience=None, eval_metric=None,
                 callbacks=None, speed=None):
        self.net, self.rule = net, rule
        self.speed = (speed or Speed()).check()
        self._accelerate(net)
        self.writer = io.BackgroundWriter()
        table = [EpochTable(self.log)] if verbose else []
        self.callbacks = CallbackList(table + list(callbacks or []))
        self.metrics = as_metrics(eval_metric) if eval_metric is not None else []
        self.l1_reg, self.l2_reg = float(l1_reg), float(l2_reg)
        self.verbose, self.progress = verbose, progress
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.patience = patience
        self.penalised, _ = weight_groups(net.module)
        # one parameter group: every parameter follows the same rule (l1/l2 are in the loss)
        self.optimizer = rule.make_optimizer(
            [p for p in net.module.parameters() if p.requires_grad])
        self.shuffle = torch.Generator().manual_seed(seed_from(net.rng))
        torch.manual_seed(seed_from(net.rng))   # dropout masks follow the net's rng
        self.history = {key: [] for key in HISTORY_KEYS}
        self.history.update({f'valid_{m.name}': [] for m in self.metrics})
        self.best_valid, self.best_params, self.since_best = math.inf, None, 0
        self.epoch, self.main_done = 0, False
        self.stop_requested = False
        folder = net.output_dir or '.'
        self.best_file = os.path.join(folder, f'{net.name}_best_net{io.EXTENSION}')
        self.final_file = os.path.join(folder, f'{net.name}_final_net{io.EXTENSION}')

    def _accelerate(self, net):
        speed, device = self.speed, torch.device(net.device)
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        if speed.channels_last:
            net.module.to(memory_format=torch.channels_last)
        self.model = torch.compile(net.module) if speed.compile else net.module
        dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(speed.amp)
        self.autocast = (functools.partial(torch.autocast, device.type, dtype) if dtype
                         else contextlib.nullcontext)
        self.scaler = torch.amp.GradScaler(device.type) if speed.amp == 'fp16' else None

    def penalty(self):
        """l1 * sum|W| + l2 * sum W^2 over weights (not biases, norms or PReLU slopes)."""
        total = 0.0
        if self.l1_reg:
            total = total + self.l1_reg * sum(w.abs().sum() for w in self.penalised)
        if self.l2_reg:
            total = total + self.l2_reg * sum(w.pow(2).sum() for w in self.penalised)
        return total

    def log(self, message):
        if self.verbose:
            tqdm.write(message)


def weight_groups(module):
    """Split parameters into weight matrices/filters and everything else."""
    decayed, plain = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        is_weight = name.endswith('weight') and p.dim() > 1
        (decayed if is_weight else plain).append(p)
    return decayed, plain


def train_batches(session, x, y, order, state):
    """Train on the epoch's full batches from ``state.step`` on, in ``order``.

    Stops early (leaving ``state.step`` at the batches done) when a Ctrl-C
    was requested. Rows after the last full batch wait for another shuffle.
    """
    net, optimizer, scaler = session.net, session.optimizer, session.scaler
    module, size, device = session.model, net.batch_size, net.device
    resident = all(v.device == y.device for v in x.values())
    steps = len(order) // size
    if state.losses is None:
        state.losses = torch.zeros(steps, device=net.device)
    errors = torch.zeros((), device=net.device, dtype=torch.long)
    penalise = session.l1_reg or session.l2_reg
    net.module.train()
    bar = tqdm(total=steps, initial=state.step, desc=f'epoch {session.epoch + 1}', leave=False,
               delay=2.0, disable=not session.progress)
    step = state.step
    hooks = session.callbacks if session.callbacks.batch_hooks else None
    while step < steps and not session.stop_requested:
        if hooks:
            hooks('on_minibatch_begin', net, {'epoch': session.epoch + 1, 'batch': step + 1})
        index = order[step * size:(step + 1) * size]
        if resident:
            target, batch = y[index], {k: v[index] for k, v in x.items()}
        else:   # streamed from (pinned) host memory
            target = y[index].to(device, non_blocking=True)
            batch = {k: v[index].to(device, non_blocking=True) for k, v in x.items()}
        with session.autocast():
            logits = module(batch)
            loss = F.cross_entropy(logits, target)
        state.losses[step] = loss.detach()
        if penalise:
            loss = loss + session.penalty()
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        errors += (logits.argmax(1) != target).sum()
        step += 1
        bar.update()
        if hooks:
            hooks('on_minibatch_end', net, {'epoch': session.epoch + 1, 'batch': step,
                                            'loss': state.losses[step - 1]})
    bar.close()
    state.step, state.errors = step, state.errors + errors.item()
    return step == steps


def check_losses(losses, epoch):
    """The mean batch loss; raises :class:`TrainingDivergedError` at the first NaN/inf."""
    mean = losses.mean().item()
    if not math.isfinite(mean):
        bad = int(torch.nonzero(~torch.isfinite(losses))[0])
        raise TrainingDivergedError(
            f'the training loss became {losses[bad].item()} in epoch {epoch + 1}, batch '
            f'{bad + 1}; try a smaller learning rate (the best net so far is kept)')
    return mean


def fits_on_device(net, pair, fraction=0.5):
    """Whether a set takes at most ``fraction`` of the device's free memory (always on CPU)."""
    device = torch.device(net.device)
    if device.type != 'cuda':
        return True
    x, y = pair
    size = sum(torch.as_tensor(v).nbytes for v in x.values()) + torch.as_tensor(y).nbytes
    return size <= fraction * torch.cuda.mem_get_info(device)[0]


def start_epoch(session, phase, resumed=None):
    """The epoch's training set and order, rebuilt exactly when ``resumed``."""
    pre = session.net.preprocessor
    if resumed is not None:
        state = EpochState(**resumed)
        pre.set_state(state.preprocessor)
        session.shuffle.set_state(state.shuffle)
        state.losses = state.losses.to(session.net.device)
    else:
        state = EpochState(phase, io._plain_tree(pre.get_state()), session.shuffle.get_state())
    pair = pre.get_train() if phase == 'main' else pre.get_all_train()
    resident = session.speed.data_on_device
    if resident is None:
        resident = fits_on_device(session.net, pair)
    x, y = device_set(session.net, pair, resident)
    if session.speed.channels_last:
        x = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
             for k, v in x.items()}
    order = torch.randperm(len(y), generator=session.shuffle).to(y.device)
    return state, x, y, order


def run_epoch(session, phase, resumed=None):
    """Train one epoch of ``phase``, evaluate, record; returns the table row,
    or the unfinished :class:`EpochState` when Ctrl-C stopped it."""
    net, started = session.net, time.perf_counter()
    rate = session.rule.annealer.learning_rate
    state, x, y, order = start_epoch(session, phase, resumed)
    if not train_batches(session, x, y, order, state):
        return state
    steps = len(state.losses)
    row = dict(epoch=session.epoch + 1, phase=phase,
               train_loss=check_losses(state.losses, session.epoch),
               train_error=state.errors / (steps * net.batch_size), valid_loss=None,
               valid_error=None, test_loss=None, test_error=None, learning_rate=rate)
    if phase == 'main':
        evaluate_main(session, row)
    row['seconds'] = time.perf_counter() - started
    for key, values in session.history.items():
        values.append(row.get(key))
    return row


def evaluate_main(session, row):
    """Validation every epoch; test set and best-net file when validation improves."""
    net, pre = session.net, session.net.preprocessor
    valid = device_set(net, pre.get_valid())
    row['valid_loss'], row['valid_error'] = evaluate_set(net, *valid)
    if session.metrics:
        row.update({f'valid_{k}': v for k, v in metric_values(net, *valid, session.metrics).items()})
    if row['valid_loss'] < session.best_valid:
        session.best_valid, session.since_best = row['valid_loss'], 0
        session.best_params = net.get_params()
        row['test_loss'], row['test_error'] = evaluate_set(net, *device_set(net, pre.get_test()))
        session.writer.submit(io.net_state(net, session.best_params), session.best_file)
    else:
        session.since_best += 1


def _fmt(value, percent=False):
    if value is None:
        return ''
    return f'{100 * value:.2f}%' if percent else f'{value:.4f}'


def format_row(row):
    """One line of the epoch table."""
    return (f'{row["epoch"]:>5} {row["phase"]:>5} {_fmt(row["train_loss"]):>10} '
            f'{_fmt(row["train_error"], True):>8} {_fmt(row["valid_loss"]):>10} '
            f'{_fmt(row["valid_error"], True):>8} {_fmt(row["test_loss"]):>10} '
            f'{_fmt(row["test_error"], True):>8} {row["learning_rate"]:>10.3g} '
            f'{row["seconds"]:>7.2f}s')


TABLE_HEADER = (f'{"epoch":>5} {"phase":>5} {"train loss":>10} {"err":>8} {"valid loss":>10} '
                f'{"err":>8} {"test loss":>10} {"err":>8} {"rate":>10} {"time":>8}')


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
    returns True when the phase should stop."""
    rule = session.rule
    stop, message = rule.annealer.epoch_done(session.epoch, row['train_loss'],
                                             row['valid_loss'], session.net)
    rule.epoch_done(session.epoch, row['train_loss'], session.optimizer)
    session.epoch += 1
    if message:
        session.log(f'      {message}')
    if session.patience and row['phase'] == 'main' and session.since_best >= session.patience:
        session.log(f'      no validation improvement in {session.patience} epochs: stopping')
        stop = True
    if session.checkpoint_every and session.epoch % session.checkpoint_every == 0:
        checkpoint.write(session)
    return stop


def run_phase(session, phase, epochs, resumed=None):
    """Run ``phase`` until ``epochs`` epochs of it are done (counting resumed ones),
    or the annealer or patience stops it, or Ctrl-C; returns False on Ctrl-C."""
    done = sum(1 for p in session.history['phase'] if p == phase)
    net = session.net
    try:
        while done < epochs:
            rate = session.rule.annealer.learning_rate
            set_learning_rate(session.optimizer, rate)
            session.callbacks('on_epoch_begin', net, {'epoch': session.epoch + 1,
                                                      'phase': phase, 'learning_rate': rate})
            row = run_epoch(session, phase, resumed)
            resumed = None
            if isinstance(row, EpochState):
                path = checkpoint.write(session, row.as_dict())
                session.log(f'interrupted: ending the {phase} phase; resume from {path}')
                return False
            done += 1
            stopped = notify_epoch_end(session, row)
            if end_of_epoch(session, row) or stopped:
                break
    except StopTraining as stop:
        session.log(f'      stopped by a callback: {stop}')
    except KeyboardInterrupt:
        session.log(f'interrupted: ending the {phase} phase after epoch {session.epoch}')
        return False
    return True


class CtrlC:
    """First Ctrl-C: finish the current batch, save an 'interrupted' checkpoint
    and end the phase. A second Ctrl-C interrupts at once."""

    def __init__(self, session):
        self.session, self.previous = session, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.session.stop_requested:
            raise KeyboardInterrupt
        self.session.stop_requested = True
        self.session.log('Ctrl-C: stopping after this batch (press again to stop at once)')

    def reset(self):
        self.session.stop_requested = False

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


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


def _check_count(name, value, minimum=0, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = 'a positive' if minimum else 'a non-negative'
        raise ConfigError(f'{name} must be {kind} integer{" or None" if allow_none else ""}; '
                          f'received {value!r}')


def _check_args(net, updater, epochs, final_epochs, l1_reg, l2_reg, options):
    if not isinstance(updater, LearningRule):
        raise ConfigError('updater must be a learning rule (StochasticGradientDescent, '
                          f'Momentum, Adam or AdaDelta); received {type(updater).__name__}')
    _check_count('epochs', epochs)
    _check_count('final_epochs', final_epochs)
    _check_count('checkpoint_every', options['checkpoint_every'], 1, allow_none=True)
    _check_count('keep_checkpoints', options['keep_checkpoints'], 1)
    _check_count('patience', options['patience'], 1, allow_none=True)
    for name, value in (('l1_reg', l1_reg), ('l2_reg', l2_reg)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
            raise ConfigError(f'{name} must be a number >= 0; received {value!r}')
    net.check_complete()
    if hasattr(net.preprocessor, 'has_data') and not net.preprocessor.has_data():
        raise DataError('the preprocessor holds no data to train on (a loaded net keeps only '
                        'its statistics); attach sets with preprocessor.set_data(...)')
    check_output_dir(net.output_dir)
    resume = options['resume']
    if resume not in (None, False, True) and not os.path.isfile(os.fspath(resume)):
        raise FileFormatError(f'resume: checkpoint {os.fspath(resume)!r} does not exist')


def train(net, updater, epochs=200, final_epochs=0, l1_reg=0, l2_reg=0, *, verbose=None,
          progress=None, restore_best=True, checkpoint_every=None, keep_checkpoints=3,
          resume=None, patience=None, eval_metric=None, callbacks=None, amp=None,
          channels_last=False, compile=False, data_on_device=None):
    """Train ``net`` with the learning rule ``updater``.

    Each main epoch trains on a fresh (possibly augmented) training set,
    evaluates the validation set, and when the validation loss improves
    evaluates the test set and saves the net to
    ``<output_dir>/<name>_best_net.pt``. After the main epochs the net gets
    the best validation weights back (unless ``restore_best=False``); then
    ``final_epochs`` train on train + valid + test and the result is saved to
    ``<name>_final_net.pt``.

    Parameters
    ----------
    net : NN
    updater : LearningRule
        StochasticGradientDescent, Momentum, Adam or AdaDelta.
    epochs, final_epochs : int
        Epochs of each phase, counting those done before a resumed checkpoint.
    l1_reg, l2_reg : float
        Penalties on the weights (not on biases, batch norm or PReLU slopes).
    verbose : bool, optional
        Print the epoch table (default: the net's ``verbose``).
    progress : bool, optional
        Show a progress bar within epochs longer than two seconds.
    restore_best : bool
        Put the best validation weights back after the main phase.
    checkpoint_every : int, optional
        Write ``<name>_checkpoint_<epoch>.pt`` every this many epochs.
    keep_checkpoints : int
        How many of the newest checkpoints to keep (the best net is apart).
    resume : str or True, optional
        Continue from this checkpoint (True: the newest in ``output_dir``).
        The net must be built by the same calls and the rule be of the same
        kind; everything else comes from the file.
    patience : int, optional
        Stop the main phase after this many epochs without a better
        validation loss (early stopping; the best weights are restored).
    eval_metric : metric or list of metrics, optional
        Also evaluated on the validation set each main epoch (see
        :mod:`pydnn2.metrics`); recorded in the history as ``valid_<name>``.
    callbacks : list of pydnn2.callbacks.Callback, optional
        Hooks at the start/end of training, epochs and batches.
    amp : {None, 'bf16', 'fp16'}
        Mixed precision: forward passes under ``torch.autocast`` in that
        type (fp16 with a gradient scaler).
    channels_last : bool
        Keep feature maps in NHWC layout (usually faster for convolutions
        on GPUs).
    compile : bool
        Train through ``torch.compile(net.module)`` (the first epoch pays
        for the compilation).
    data_on_device : bool, optional
        Keep each epoch's set on the device (True) or stream batches from
        pinned host memory (False); by default on the device when the set
        takes at most half of its free memory.

    Returns
    -------
    dict of lists
        One entry per epoch for each of ``HISTORY_KEYS`` (and each metric).

    Ctrl-C finishes the current batch, writes
    ``<name>_checkpoint_<epoch>_interrupted.pt`` and ends the phase; a second
    Ctrl-C stops at once. Files already saved always stay.
    """
    options = dict(checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                   resume=resume, patience=patience)
    _check_args(net, updater, epochs, final_epochs, l1_reg, l2_reg, options)
    verbose = net.verbose if verbose is None else verbose
    session = Session(net, updater, l1_reg, l2_reg, verbose,
                      verbose if progress is None else progress, checkpoint_every,
                      keep_checkpoints, patience, eval_metric, callbacks,
                      Speed(amp, channels_last, compile, data_on_device))
    resumed = None
    if resume:
        path = checkpoint.newest(net) if resume is True else os.fspath(resume)
        resumed = checkpoint.restore(session, path)
        session.log(f'resuming from {path} after {session.epoch} epochs')
    net.history = session.history
    session.callbacks('on_train_begin', net, {'epochs': epochs, 'final_epochs': final_epochs,
                                              'epochs_done': session.epoch})
    with CtrlC(session) as ctrl_c:
        try:
            run_phases(session, epochs, final_epochs, resumed, restore_best, ctrl_c)
        finally:
            session.writer.close()     # the best net is on disk before train returns
    session.callbacks('on_train_end', net, {'history': session.history})
    return session.history


def run_phases(session, epochs, final_epochs, resumed, restore_best, ctrl_c):
    """The main phase, the return to the best weights, then the final phase."""
    net = session.net
    in_final = resumed is not None and resumed['phase'] == 'final'
    if not session.main_done and not in_final:
        try:
            run_phase(session, 'main', epochs, resumed)
        finally:
            if restore_best and session.best_params is not None:
                net.set_params(session.best_params)
        session.main_done = True
        resumed = None
        ctrl_c.reset()
    if session.best_params is not None:
        session.log(f'best validation loss {session.best_valid:.4f}; best net saved to '
                    f'{session.best_file}')
    if final_epochs:
        run_phase(session, 'final', final_epochs, resumed)
        io.save(net, session.final_file)
        session.log(f'final net saved to {session.final_file}')
