"""Hyperparameter searches on Optuna: :func:`search` over a function that builds a net.

``build(net, trial)`` adds layers to a fresh net, drawing their sizes from
``trial.suggest_*``; ``train_options(trial)`` returns the learning rule and
``train``'s options, drawn the same way. Each trial trains in a folder of
its own (``<output_dir>/trial_0007``) with a :class:`PruningCallback` that
reports the validation loss every epoch, so that Optuna's pruner stops bad
trials early. The result is the study and the best net, loaded.

One machine or several: every worker runs the same script with the same
``storage`` URL and ``study_name`` (``'sqlite:///search.db'`` for processes of
one machine; a ``'postgresql://...'`` or ``'mysql://...'`` URL for several,
the same code path) and the trials are shared out between them. A worker
that is killed stops beating (Optuna's heartbeat, every
``heartbeat_interval`` seconds); after ``grace_period`` another worker marks
its trial failed and runs it again with the same parameters (``max_retry``
times). A trial that fails (a builder error, a diverging loss) is recorded
as failed with its error (``trial.user_attrs['error']``) and the search goes
on; Ctrl-C or SIGTERM stops it. Needs the ``tune`` extra
(``pip install pydnn2[tune]``).

>>> def build(net, trial):                                       # doctest: +SKIP
...     net.add_convolution(trial.suggest_categorical('filters', [4, 8, 16]), (3, 3), (2, 2))
...     net.add_hidden(trial.suggest_int('hidden', 16, 64, log=True))
...     net.add_logistic()
>>> def train_options(trial):                                   # doctest: +SKIP
...     return {'updater': nn.Adam(trial.suggest_float('rate', 1e-3, 1e-1, log=True)),
...             'epochs': 10}
>>> result = search(build, train_options, pre, 'images', 10, 64, n_trials=20,
...                 storage='sqlite:///search.db', study_name='digits')   # doctest: +SKIP
>>> result.best_net.predict(x)                                  # doctest: +SKIP
"""

import os
import socket
import time
import warnings

from . import checks, files
from .errors import ConfigError, Pydnn2Error, TrainingInterrupted
from .extras import require
from .net import NN, load
from .train.callbacks import Callback, StopTraining

#: Optuna's recommended heartbeat: a beat a minute, stale after two.
HEARTBEAT_INTERVAL = 60
#: The seconds an SQLite connection waits for another worker's write.
SQLITE_TIMEOUT = 60
#: Tries at opening a storage: workers that start together race to make its tables.
STORAGE_ATTEMPTS = 5


def _optuna():
    return require('optuna', 'pydnn2.tune', 'tune')


class TrialFailed(Pydnn2Error):
    """A trial's build or training raised; the search records it failed and goes on.
    The error it wraps is its ``__cause__``."""


class PruningCallback(Callback):
    """Report ``monitor`` to an Optuna trial after every main epoch, and stop training
    when the trial's pruner says so.

    After ``train`` returns, ``pruned_at`` is the epoch it stopped after (None
    if it ran to the end): raise ``optuna.TrialPruned`` then, as :func:`search` does.
    The final phase, if any, is skipped for a pruned trial.

    Parameters
    ----------
    trial : optuna.trial.Trial
    monitor : str
        A key of the epoch row: ``'valid_loss'``, ``'valid_error'``, ``'valid_<metric>'``.
    """

    rank_zero_only = True

    def __init__(self, trial, monitor='valid_loss'):
        self.trial, self.monitor = trial, monitor
        self.pruned_at = None

    def state_dict(self):
        """The epoch the trial was pruned after (None while it runs)."""
        return {'pruned_at': self.pruned_at}

    def on_epoch_begin(self, net, logs):
        if self.pruned_at is not None:          # the final phase of a pruned trial
            raise StopTraining(f'trial {self.trial.number} was pruned')

    def on_epoch_end(self, net, logs):
        if logs.get('phase') != 'main':
            return
        value = logs.get(self.monitor)
        if value is None:
            raise ConfigError(f'PruningCallback: the epoch row has no {self.monitor!r} (a '
                              f'validation set is needed); available: '
                              f'{sorted(k for k, v in logs.items() if v is not None)}')
        self.trial.report(float(value), logs['epoch'])
        if self.trial.should_prune():
            self.pruned_at = logs['epoch']
            raise StopTraining(f'trial {self.trial.number} pruned after epoch '
                               f'{self.pruned_at} ({self.monitor} {value:.4g})')


def open_storage(url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=None, max_retry=1):
    """An Optuna RDB storage at ``url`` with heartbeats and retries of killed trials.

    Parameters
    ----------
    url : str
        ``'sqlite:///search.db'`` (workers on one machine), or a PostgreSQL /
        MySQL URL such as ``'postgresql://user:password@host/db'`` (workers on
        several machines; its driver, e.g. psycopg2, installed).
    heartbeat_interval : int
        Seconds between a running trial's beats.
    grace_period : int, optional
        Seconds without a beat after which a trial counts as lost (default:
        twice the interval).
    max_retry : int
        How many times a lost trial is run again with its parameters (0: it
        stays failed).

    Returns
    -------
    optuna.storages.RDBStorage
    """
    optuna = _optuna()
    url = checks.path(url, 'storage', where='open_storage')
    interval = checks.integer(heartbeat_interval, 'heartbeat_interval', 1, where='open_storage')
    grace = checks.integer(grace_period, 'grace_period', 1, none=True, where='open_storage')
    retries = checks.integer(max_retry, 'max_retry', 0, where='open_storage')
    engine = {'connect_args': {'timeout': SQLITE_TIMEOUT}} if url.startswith('sqlite') else {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(retries) if retries else None
        for attempt in range(1, STORAGE_ATTEMPTS + 1):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=interval,
                    grace_period=grace, heartbeat_stale_trial_callback=retry)
            except require('sqlalchemy.exc', 'pydnn2.tune', 'tune').SQLAlchemyError:
                if attempt == STORAGE_ATTEMPTS:    # (workers making the tables at once)
                    raise
                time.sleep(0.2 * attempt)


def trial_folder(output_dir, number):
    """The folder trial ``number`` writes its files in."""
    return os.path.join(output_dir, f'trial_{number:04d}')


class _Objective:
    """One trial: a net built by ``build``, trained with ``train_options``, scored by
    the best ``monitor`` of its main epochs."""

    def __init__(self, build, train_options, net_args, net_options, output_dir, monitor,
                 direction):
        self.build, self.train_options = build, train_options
        self.net_args, self.net_options = net_args, net_options
        self.output_dir, self.monitor, self.direction = output_dir, monitor, direction

    def __call__(self, trial):
        optuna = _optuna()
        folder = trial_folder(self.output_dir, trial.number)
        trial.set_user_attr('folder', folder)
        trial.set_user_attr('worker', f'{socket.gethostname()}:{os.getpid()}')
        try:
            net, history, pruning = self._train(trial, folder)
            value = None if pruning.pruned_at is not None else self._score(history)
        except (optuna.TrialPruned, TrainingInterrupted):   # (a signal stops the search)
            raise
        except Exception as exc:
            trial.set_user_attr('error', f'{type(exc).__name__}: {exc}')
            raise TrialFailed(f'trial {trial.number} failed: {type(exc).__name__}: '
                              f'{exc}') from exc
        if value is None:
            raise optuna.TrialPruned(f'pruned after epoch {pruning.pruned_at}')
        trial.set_user_attr('net', os.path.join(folder, f'{net.name}_best_net{files.EXTENSION}'))
        return value

    def _score(self, history):
        """The best ``monitor`` of the main epochs."""
        values = [v for v, phase in zip(history.get(self.monitor, ()), history['phase'])
                  if phase == 'main' and v is not None]
        if not values:
            raise ConfigError(f'search: the main epochs recorded no {self.monitor!r} to score '
                              f'the trial by; recorded: {sorted(history)}')
        return min(values) if self.direction == 'minimize' else max(values)

    def _train(self, trial, folder):
        preprocessor, channel, num_classes, batch_size = self.net_args
        if callable(batch_size):
            batch_size = batch_size(trial)
        options = {'verbose': False, **self.net_options}
        net = NN(preprocessor, channel, num_classes, batch_size, options.pop('seed', 0),
                 output_dir=folder, **options)
        self.build(net, trial)
        train = dict(self.train_options(trial))
        if 'updater' not in train:
            raise ConfigError(f"train_options(trial) must return a dict with 'updater' (the "
                              f'learning rule) and train options; received keys {sorted(train)}')
        updater = train.pop('updater')
        pruning = PruningCallback(trial, self.monitor)
        extra = train.get('callbacks') or []
        train['callbacks'] = ([extra] if isinstance(extra, Callback) else list(extra)) + [pruning]
        return net, net.train(updater, **train), pruning


class SearchResult:
    """What :func:`search` returns: the study, and the best trial's net.

    Attributes
    ----------
    study : optuna.study.Study
        Every trial, with its parameters, state, value, and user attributes
        ``folder`` (its files), ``worker`` (host:pid), ``net`` (its best net
        file, when it completed) and ``error`` (when it failed).
    """

    def __init__(self, study, monitor):
        self.study, self.monitor = study, monitor

    @property
    def best_trial(self):
        """The completed trial with the best value."""
        return self.study.best_trial

    @property
    def best_net(self):
        """The best trial's net, loaded from its best-net file."""
        return load(self.best_trial.user_attrs['net'])

    def best_net_paths(self, count=1):
        """The best-net files of the ``count`` best completed trials, best first
        (e.g. for :class:`~pydnn2.Ensemble`)."""
        count = checks.integer(count, 'count', 1, where='best_net_paths')
        optuna = _optuna()
        done = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        sign = 1 if self.study.direction == optuna.study.StudyDirection.MINIMIZE else -1
        done.sort(key=lambda t: (sign * t.value, t.number))
        return [t.user_attrs['net'] for t in done[:count]]

    def counts(self):
        """``{state name: trials}``, e.g. ``{'COMPLETE': 9, 'PRUNED': 2, 'FAIL': 1}``."""
        result = {}
        for trial in self.study.get_trials(deepcopy=False):
            result[trial.state.name] = result.get(trial.state.name, 0) + 1
        return result

    def __repr__(self):
        counts = ', '.join(f'{n} {s.lower()}' for s, n in sorted(self.counts().items()))
        try:
            best = self.best_trial
            tail = f'; best {self.monitor} {best.value:.4g} in trial {best.number}'
        except ValueError:
            tail = '; no trial completed'
        return f'SearchResult of study {self.study.study_name!r}: {counts}{tail}'


def _progress(study, optuna):
    """``(taken, waiting, running)``: trials that count towards ``n_trials`` (ended
    for their own reasons, waiting or running), and of them those waiting and running.
    A trial failed because its worker was lost does not count: its retry does."""
    state = optuna.trial.TrialState
    taken = waiting = running = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state == state.WAITING:
            waiting += 1
        elif trial.state == state.RUNNING:
            running += 1
        elif trial.state == state.FAIL and 'error' not in trial.user_attrs:
            continue
        taken += 1
    return taken, waiting, running


def _run(study, objective, n_trials, optuna):
    """Run trials until ``n_trials`` have ended, here or in other workers; with
    heartbeats, wait for the others' running trials (failing the lost ones, whose
    retries then run here)."""
    interval = _heartbeat_interval(study)
    while True:
        taken, waiting, running = _progress(study, optuna)
        if taken < n_trials or waiting:
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        elif running and interval:
            time.sleep(min(interval, 1))
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        else:
            return


def _heartbeat_interval(study):
    """The seconds between heartbeats of the study's storage (None without heartbeats)."""
    storage = getattr(study, '_storage', None)
    getter = getattr(storage, 'get_heartbeat_interval', None)
    return getter() if getter is not None else None


def _check_monitor(preprocessor, monitor):
    """Refuse a validation figure to monitor when there is no validation set."""
    if hasattr(preprocessor, 'has_data') and not preprocessor.has_data():
        return                                  # (NN says what is missing)
    if monitor.startswith('valid') and preprocessor.num_rows('valid') == 0:
        raise ConfigError(f'search: monitor {monitor!r} needs a validation set, and the '
                          f'preprocessor has none; split off one, or monitor train_loss')


def _direction(direction, monitor):
    """'minimize' for losses and errors, else 'maximize', unless given."""
    if direction is None:
        return 'minimize' if monitor.endswith(('loss', 'error')) else 'maximize'
    return checks.one_of(direction, 'direction', ('minimize', 'maximize'), where='search')


def search(build, train_options, preprocessor, channel, num_classes, batch_size, *,
           n_trials, storage=None, study_name=None, output_dir='search', monitor='valid_loss',
           direction=None, sampler=None, pruner=None, seed=0, net_options=None,
           heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=None, max_retry=1, study=None):
    """Search for the best net ``build`` can make, with Optuna.

    Parameters
    ----------
    build : callable
        ``build(net, trial)`` adds the layers to a new net, drawing choices from
        ``trial.suggest_*``.
    train_options : callable
        ``train_options(trial)`` returns a dict: ``'updater'`` (the learning
        rule) and ``train``'s options (``epochs``, ``callbacks``, ...).
    preprocessor, channel, num_classes, batch_size
        As for :class:`~pydnn2.NN`; ``batch_size`` may be ``batch_size(trial)``.
    n_trials : int
        Trials to end (complete, pruned or failed with an error) in the whole
        study, counting those of every worker and of earlier calls. Workers
        starting a trial at the same moment may add one each.
    storage : str or optuna storage, optional
        A database URL (opened by :func:`open_storage` with the heartbeat
        arguments) or an Optuna storage; default: in memory, this process alone.
    study_name : str, optional
        The study to make or go on with (the same in every worker).
    output_dir : str
        Where each trial writes its files (``trial_0007/``); for workers on
        several machines, a folder they all reach.
    monitor : str
        What the pruner sees and the trial's value is: the best of it over the
        main epochs (the best-net file is the epoch of least validation loss).
    direction : {'minimize', 'maximize'}, optional
        Default: 'minimize' for a loss or an error, else 'maximize'.
    sampler, pruner : optional
        Optuna's (default: TPE and the median pruner).
    seed : int
        Every trial's net's ``rng``.
    net_options : dict, optional
        More keyword arguments of :class:`~pydnn2.NN` (``activation``, ``device``, ...).
    heartbeat_interval, grace_period, max_retry
        See :func:`open_storage`.
    study : optuna.study.Study, optional
        A study to use instead of ``storage`` ... ``pruner``.

    Returns
    -------
    SearchResult
    """
    optuna = _optuna()
    n_trials = checks.integer(n_trials, 'n_trials', 1, where='search')
    direction = _direction(direction, monitor)
    _check_monitor(preprocessor, monitor)
    if study is None:
        if isinstance(storage, str):
            storage = open_storage(storage, heartbeat_interval, grace_period, max_retry)
        study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
    options = {**(net_options or {}), 'seed': seed}
    objective = _Objective(build, train_options, (preprocessor, channel, num_classes, batch_size),
                           options, os.fspath(output_dir), monitor, direction)
    _run(study, objective, n_trials, optuna)
    return SearchResult(study, monitor)
