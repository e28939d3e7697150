"""The learning-rate finder: a short sweep that leaves the net as it was.

:func:`lr_find` trains the net for ``num_steps`` batches while the learning
rate grows exponentially from ``start_lr`` to ``end_lr``, records each
batch's loss, and stops early once the loss explodes. The sweep runs
through the training loop's own machinery (a
:class:`~pydnn2.train.trainer.Trainer`'s ``start_epoch`` and ``train_batches``,
with a callback that sets the rate before each batch and asks the run's stop
request when the sweep is done), on a copy of the learning rule. Afterwards
everything it touched is put back bit for bit (:class:`Snapshot`): the
weights and buffers, each module's train/eval mode, and every random
generator (torch's CPU and CUDA ones, numpy's and Python's global ones, the
net's ``rng``, its initialisation generator and the preprocessor's
augmentation schedule). A ``train`` after it trains exactly as without it.

The result (:class:`LRFindResult`) holds the curve and a suggested rate:
the rate where the smoothed loss falls fastest (on a log scale of rates),
before the loss is lowest.

>>> rates = sweep_rates(1e-4, 1.0, 5)
>>> [float(f'{r:.0e}') for r in rates]
[0.0001, 0.001, 0.01, 0.1, 1.0]
>>> smooth([1.0, 1.0, 1.0]).tolist()
[1.0, 1.0, 1.0]
"""

import copy
import dataclasses
import math

import numpy as np
import torch

from .. import checks, rng as rngs
from ..errors import TrainingDivergedError
from ..evaluate import plots
from .callbacks import Callback
from .config import TrainConfig
from .live import show_figure
from .loop import check_ready
from .rules import Adam, check_rule, set_learning_rate
from .trainer import Trainer


def sweep_rates(start_lr, end_lr, num_steps):
    """``num_steps`` rates growing exponentially from ``start_lr`` to ``end_lr``."""
    if num_steps == 1:
        return np.array([float(start_lr)])
    return start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))


def moving_average(losses, beta):
    """An exponential moving average of ``losses``, bias-corrected (as in Adam),
    so that the first values are not pulled towards zero."""
    out, average = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out[i] = average / (1 - beta ** (i + 1))
    return out


def smooth(losses, beta=0.7):
    """:func:`moving_average` run forwards, then backwards: smooth, without the lag
    of a one-way average (which would shift the curve to higher rates)."""
    return moving_average(moving_average(np.asarray(losses, np.float64), beta)[::-1],
                          beta)[::-1]


def suggest(rates, smoothed):
    """The rate of steepest descent of ``smoothed`` against ``log10(rates)``,
    looked for between the first tenth of the sweep and the lowest loss.

    Returns ``(rate, how)``; when the curve is too short or never falls, the
    rate a tenth of that of the lowest loss (at least the first rate).
    """
    rates, smoothed = np.asarray(rates, np.float64), np.asarray(smoothed, np.float64)
    lowest = int(np.argmin(smoothed))
    start = min(len(smoothed) // 10, lowest)
    if lowest - start >= 2:
        slopes = np.gradient(smoothed[start:lowest + 1], np.log10(rates[start:lowest + 1]))
        if slopes.min() < 0:
            return float(rates[start + int(np.argmin(slopes))]), 'steepest descent'
    return float(max(rates[lowest] / 10, rates[0])), 'a tenth of the lowest loss rate'


@dataclasses.dataclass
class LRFindResult:
    """What :func:`lr_find` found.

    ``rates``, ``losses`` (smoothed) and ``raw_losses`` have one entry per
    batch run (:attr:`num_steps`); ``suggestion`` is the suggested rate and
    ``how`` says how it was chosen.
    """

    rates: np.ndarray               # the learning rate of each batch run
    losses: np.ndarray              # the smoothed loss after each batch
    raw_losses: np.ndarray          # each batch's loss
    suggestion: float               # the suggested learning rate
    how: str                        # 'steepest descent' or 'a tenth of the lowest loss rate'
    min_loss_rate: float            # the rate at the lowest smoothed loss
    stopped_early: bool             # the loss exploded (or was not finite) before the end
    start_lr: float                 # the sweep asked for: from start_lr
    end_lr: float                   # ... to end_lr

    @property
    def num_steps(self):
        """The batches the sweep ran (the length of the curve)."""
        return len(self.rates)

    def __repr__(self):
        end = 'stopped when the loss exploded' if self.stopped_early else 'ran to the end'
        return (f'LRFindResult: {self.num_steps} steps from {self.start_lr:.3g} ('
                f'{end}); suggestion {self.suggestion:.3g} ({self.how}); lowest loss at '
                f'{self.min_loss_rate:.3g}')

    def plot(self, path=None, title=None):
        """The loss against the learning rate (log scale), smoothed and raw, with the
        suggestion and the lowest loss marked; a ``matplotlib.figure.Figure``,
        also written to ``path`` when given (PNG, PDF, SVG: by the extension)."""
        fig = plots._new_figure((7, 4))
        ax = fig.subplots()
        ax.plot(self.rates, self.raw_losses, color='0.75', linewidth=1, label='batch loss')
        ax.plot(self.rates, self.losses, color='tab:blue', label='smoothed loss')
        ax.axvline(self.suggestion, color='tab:red', linestyle='--',
                   label=f'suggestion {self.suggestion:.2g} ({self.how})')
        ax.plot(self.min_loss_rate, self.losses.min(), 'v', color='black',
                label=f'lowest loss at {self.min_loss_rate:.2g}')
        ax.set_xscale('log')
        top = min(np.max(self.raw_losses), 4 * self.losses[0])   # keep the explosion in view
        ax.set_ylim(min(np.min(self.raw_losses), self.losses.min()) * 0.95, top * 1.05)
        ax.set_xlabel('learning rate')
        ax.set_ylabel('training loss')
        ax.grid(alpha=0.3, which='both')
        ax.legend(fontsize=8)
        fig.suptitle(title or f'learning-rate finder: {self.num_steps} batches')
        return plots._finish(fig, path)


class Snapshot:
    """Everything a training sweep changes in and around a net, to put back exactly:
    weights and buffers, module modes, and every random generator."""

    def __init__(self, net):
        self.net = net
        self.weights = {k: v.detach().clone() for k, v in net.module.state_dict().items()}
        self.modes = [m.training for m in net.module.modules()]
        self.rng = rngs.snapshot(net, everything=True)    # every generator there is
        self.cudnn_benchmark = torch.backends.cudnn.benchmark

    def restore(self):
        """Put it all back (weights copied in place: the net's tensors stay its own)."""
        net, rng = self.net, self.rng
        with torch.no_grad():
            for key, value in net.module.state_dict().items():
                value.copy_(self.weights[key])
        for module, mode in zip(net.module.modules(), self.modes):
            module.training = mode
        rngs.restore(rng, net)
        torch.backends.cudnn.benchmark = self.cudnn_benchmark


class _Sweep(Callback):
    """Sets each batch's rate, records its loss, and stops the sweep when it is
    done or the loss explodes: its moving average (``beta``, slower than the
    curve's smoothing, so that one bad batch does not end the sweep) passes
    ``diverge`` times its best, or it is not finite."""

    def __init__(self, rates, diverge, beta=0.9):
        self.rates, self.diverge, self.beta = rates, diverge, beta
        self.losses, self.average, self.best = [], 0.0, math.inf
        self.exploded = False

    @property
    def done(self):
        """Whether the sweep has ended (all rates run, or the loss exploded)."""
        return self.exploded or len(self.losses) == len(self.rates)

    def on_minibatch_begin(self, net, logs):
        set_learning_rate(self.trainer.optimizer, self.rates[len(self.losses)])

    def on_minibatch_end(self, net, logs):
        loss = float(logs['loss'])
        if not math.isfinite(loss):
            self.exploded = True
        else:
            self.losses.append(loss)
            self.average = self.beta * self.average + (1 - self.beta) * loss
            smoothed = self.average / (1 - self.beta ** len(self.losses))
            self.best = min(self.best, smoothed)
            self.exploded = len(self.losses) > 1 and smoothed > self.diverge * self.best
        if self.done:
            self.trainer.stop.ask('the learning-rate sweep is done')


def _check(updater, start_lr, end_lr, num_steps, diverge):
    if updater is None:
        updater = Adam(0.001)          # (its rate is never used: the sweep sets the rates)
    check_rule(updater, 'lr_find: updater')
    start_lr = checks.number(start_lr, 'start_lr', above=0, where='lr_find')
    end_lr = checks.number(end_lr, 'end_lr', above=start_lr, where='lr_find',
                           expected=f'a number above start_lr = {start_lr}')
    num_steps = checks.integer(num_steps, 'num_steps', 2, where='lr_find')
    diverge = checks.number(diverge, 'diverge', above=1, where='lr_find')
    return updater, start_lr, end_lr, num_steps, diverge


def _run_sweep(net, updater, sweep, l1_reg, l2_reg):
    """Train on reshuffled epochs of the training set until the sweep is done."""
    config = TrainConfig(epochs=0, l1_reg=l1_reg, l2_reg=l2_reg, verbose=False,
                         progress=False, callbacks=[sweep])
    trainer = Trainer(net, copy.deepcopy(updater), config)   # a copy: the rule is untouched
    try:
        while not sweep.done:
            state, batches = trainer.start_epoch('main')
            with batches:
                trainer.train_batches(batches, state)
    finally:
        trainer.saves.close()
        trainer.close()


def lr_find(net, updater=None, start_lr=1e-6, end_lr=1.0, num_steps=100, diverge=4.0,
            l1_reg=0, l2_reg=0, plot=False, verbose=None):
    """Sweep the learning rate exponentially over ``num_steps`` batches, then put
    the net back exactly as it was.

    Parameters
    ----------
    net : NN
        A complete net with training data.
    updater : LearningRule, optional
        The rule you mean to train with (its learning rate is ignored; a copy is
        used); default ``Adam``.
    start_lr, end_lr : float
        The first and the last rate of the sweep.
    num_steps : int
        Batches (default 100); the training set is reshuffled and gone through
        again as often as needed.
    diverge : float
        Stop once the smoothed loss passes this many times its lowest value.
    l1_reg, l2_reg : float
        The penalties, as in ``train``.
    plot : bool or str
        Draw the curve: in a notebook it is displayed; a path also writes it there.
    verbose : bool, optional
        Print the result (default: the net's ``verbose``).

    Returns
    -------
    LRFindResult
        ``rates``, ``losses`` (smoothed), ``raw_losses``, ``suggestion``, ``plot()``.

    >>> result = net.lr_find(nn.Adam(0.001))                # doctest: +SKIP
    >>> net.train(nn.Adam(result.suggestion), epochs=10)    # doctest: +SKIP
    """
    updater, start_lr, end_lr, num_steps, diverge = _check(updater, start_lr, end_lr,
                                                           num_steps, diverge)
    check_ready(net, updater, TrainConfig())
    rates = sweep_rates(start_lr, end_lr, num_steps)
    sweep, snapshot = _Sweep(rates, diverge), Snapshot(net)
    try:
        _run_sweep(net, updater, sweep, l1_reg, l2_reg)
    finally:
        snapshot.restore()
    result = _result(rates, sweep, start_lr, end_lr)
    if net.verbose if verbose is None else verbose:
        print(result)
    if plot:
        show_figure(result.plot(path=None if plot is True else plot))
    return result


def _result(rates, sweep, start_lr, end_lr):
    raw = np.array(sweep.losses, np.float64)
    if not len(raw):
        raise TrainingDivergedError(f'lr_find: the loss was not finite at the first rate, '
                                    f'{start_lr:.3g}; try a smaller start_lr')
    rates = np.asarray(rates[:len(raw)], np.float64)
    smoothed = smooth(raw)
    suggestion, how = suggest(rates, smoothed)
    return LRFindResult(rates, smoothed, raw, suggestion, how,
                        float(rates[int(np.argmin(smoothed))]), sweep.exploded, start_lr,
                        end_lr)
