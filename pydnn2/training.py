"""The training loop: epochs, evaluation, best-net saving and the epoch table.

The loop is lean (DESIGN decision 5): batches are sliced from tensors that
already sit on the training device, losses and error counts accumulate on
the device and are read once per epoch, and the progress bar reads nothing
from the device. It is split into small functions: :func:`train_epoch` runs
one pass over a set, :func:`run_phase` runs the epochs of one phase
(main or final), :func:`train` checks the arguments and runs both phases.
"""

import math
import numbers
import os
import tempfile
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import io
from .errors import ConfigError, DataError, TrainingDivergedError
from .evaluate import evaluate_set
from .learning import LearningRule, set_learning_rate
from .net import seed_from

HISTORY_KEYS = ('epoch', 'phase', 'train_loss', 'train_error', 'valid_loss', 'valid_error',
                'test_loss', 'test_error', 'learning_rate', 'seconds')


class Session:
    """What one call of :func:`train` works with: the net, its optimizer, options."""

    def __init__(self, net, rule, l1_reg, l2_reg, verbose, progress):
        self.net, self.rule = net, rule
        self.l1_reg, self.l2_reg = float(l1_reg), float(l2_reg)
        self.verbose, self.progress = verbose, progress
        decayed, plain = weight_groups(net.module)
        self.penalised = decayed
        self.optimizer = rule.make_optimizer(
            [{'params': decayed}, {'params': plain}] if plain else decayed)
        self.shuffle = torch.Generator().manual_seed(seed_from(net.rng))
        torch.manual_seed(seed_from(net.rng))   # dropout masks follow the net's rng
        self.history = {key: [] for key in HISTORY_KEYS}
        self.best_valid = math.inf
        self.best_params = None
        self.best_file = os.path.join(net.output_dir or '.', f'{net.name}_best_net{io.EXTENSION}')
        self.final_file = os.path.join(net.output_dir or '.', f'{net.name}_final_net{io.EXTENSION}')
        self.epoch = 0

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


def train_epoch(session, x, y, desc):
    """One pass over ``(x, y)`` in shuffled full batches; returns (loss, error rate).

    Rows left over after the last full batch wait for another epoch's shuffle.
    """
    net, optimizer = session.net, session.optimizer
    module, size = net.module, net.batch_size
    steps = len(y) // size
    module.train()
    order = torch.randperm(len(y), generator=session.shuffle).to(net.device)
    losses = torch.zeros(steps, device=net.device)
    errors = torch.zeros((), device=net.device, dtype=torch.long)
    penalise = session.l1_reg or session.l2_reg
    bar = tqdm(total=steps, desc=desc, leave=False, delay=2.0, disable=not session.progress)
    for step in range(steps):
        index = order[step * size:(step + 1) * size]
        target = y[index]
        logits = module({k: v[index] for k, v in x.items()})
        loss = F.cross_entropy(logits, target)
        losses[step] = loss.detach()
        if penalise:
            loss = loss + session.penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        errors += (logits.argmax(1) != target).sum()
        bar.update()
    bar.close()
    return check_losses(losses, session.epoch), errors.item() / (steps * size)


def check_losses(losses, epoch):
    """The mean batch loss; raises :class:`TrainingDivergedError` at the first NaN/inf."""
    mean = losses.mean().item()
    if not math.isfinite(mean):
        bad = int(torch.nonzero(~torch.isfinite(losses))[0])
        raise TrainingDivergedError(
            f'the training loss became {losses[bad].item()} in epoch {epoch + 1}, batch '
            f'{bad + 1}; try a smaller learning rate (the best net so far is kept)')
    return mean


def _device_set(net, pair):
    x, y = pair
    return ({k: torch.as_tensor(v).to(net.device, non_blocking=True) for k, v in x.items()},
            torch.as_tensor(y).to(net.device))


def run_epoch(session, phase):
    """Train one epoch of ``phase`` ('main' or 'final'), evaluate, record; returns a row."""
    net, started = session.net, time.perf_counter()
    pre = net.preprocessor
    rate = session.rule.annealer.learning_rate
    x, y = _device_set(net, pre.get_train() if phase == 'main' else pre.get_all_train())
    train_loss, train_error = train_epoch(session, x, y, f'epoch {session.epoch + 1}')
    row = dict(epoch=session.epoch + 1, phase=phase, train_loss=train_loss,
               train_error=train_error, valid_loss=None, valid_error=None, test_loss=None,
               test_error=None, learning_rate=rate)
    if phase == 'main':
        row['valid_loss'], row['valid_error'] = evaluate_set(net, *_device_set(net, pre.get_valid()))
        if row['valid_loss'] < session.best_valid:
            session.best_valid = row['valid_loss']
            session.best_params = net.get_params()
            row['test_loss'], row['test_error'] = evaluate_set(net, *_device_set(net, pre.get_test()))
            io.save(net, session.best_file)
    row['seconds'] = time.perf_counter() - started
    for key in HISTORY_KEYS:
        session.history[key].append(row[key])
    return row


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


def run_phase(session, phase, epochs):
    """Run up to ``epochs`` epochs of ``phase``; stops early when the annealer says so.

    Ctrl-C ends the phase after saying so; what was saved stays saved.
    """
    rule, net = session.rule, session.net
    try:
        for _ in range(epochs):
            set_learning_rate(session.optimizer, rule.annealer.learning_rate)
            row = run_epoch(session, phase)
            session.log(format_row(row))
            valid = row['valid_loss']
            stop, message = rule.annealer.epoch_done(session.epoch, row['train_loss'], valid, net)
            rule.epoch_done(session.epoch, row['train_loss'], session.optimizer)
            session.epoch += 1
            if message:
                session.log(f'      {message}')
            if stop:
                break
    except KeyboardInterrupt:
        session.log(f'interrupted: ending the {phase} phase after epoch {session.epoch}')
        return False
    return True


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


def _check_args(net, updater, epochs, final_epochs, l1_reg, l2_reg):
    if not isinstance(updater, LearningRule):
        raise ConfigError('updater must be a learning rule (StochasticGradientDescent, '
                          f'Momentum, Adam or AdaDelta); received {type(updater).__name__}')
    for name, value in (('epochs', epochs), ('final_epochs', final_epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ConfigError(f'{name} must be a non-negative integer; received {value!r}')
    for name, value in (('l1_reg', l1_reg), ('l2_reg', l2_reg)):
        if not isinstance(value, numbers.Real) or not value >= 0:
            raise ConfigError(f'{name} must be a number >= 0; received {value!r}')
    net.check_complete()
    if hasattr(net.preprocessor, 'has_data') and not net.preprocessor.has_data():
        raise DataError('the preprocessor holds no data to train on (a loaded net keeps only '
                        'its statistics); attach sets with preprocessor.set_data(...)')
    check_output_dir(net.output_dir)


def train(net, updater, epochs=200, final_epochs=0, l1_reg=0, l2_reg=0, *, verbose=None,
          progress=None, restore_best=True):
    """Train ``net`` with the learning rule ``updater``.

    Each main epoch trains on a fresh (possibly augmented) training set,
    evaluates the validation set, and when the validation loss improves
    evaluates the test set and saves the net to
    ``<output_dir>/<name>_best_net.pt``. After the main epochs the net gets
    the best validation weights back (unless ``restore_best=False``); then
    ``final_epochs`` train on train + valid + test and the result is saved to
    ``<name>_final_net.pt``. Ctrl-C ends the current phase; saved files stay.

    Parameters
    ----------
    net : NN
    updater : LearningRule
        StochasticGradientDescent, Momentum, Adam or AdaDelta.
    epochs, final_epochs : int
    l1_reg, l2_reg : float
        Penalties on the weights (not on biases, batch norm or PReLU slopes).
    verbose : bool, optional
        Print the epoch table (default: the net's ``verbose``).
    progress : bool, optional
        Show a progress bar within epochs longer than two seconds.
    restore_best : bool
        Put the best validation weights back after the main phase.

    Returns
    -------
    dict of lists
        One entry per epoch for each of ``HISTORY_KEYS``.
    """
    _check_args(net, updater, epochs, final_epochs, l1_reg, l2_reg)
    verbose = net.verbose if verbose is None else verbose
    session = Session(net, updater, l1_reg, l2_reg, verbose,
                      verbose if progress is None else progress)
    net.history = session.history
    session.log(TABLE_HEADER)
    try:
        run_phase(session, 'main', epochs)
    finally:
        if restore_best and session.best_params is not None:
            net.set_params(session.best_params)
    if final_epochs:
        run_phase(session, 'final', final_epochs)
        io.save(net, session.final_file)
        session.log(f'final net saved to {session.final_file}')
    if session.best_params is not None:
        session.log(f'best validation loss {session.best_valid:.4f}; best net saved to '
                    f'{session.best_file}')
    return session.history
