"""Starting the ranks from Python: :func:`launch` and ``net.train(..., devices=N)``.

``torchrun`` starts the processes of a data-parallel run from the shell. In a
notebook or a plain Python session :func:`launch` does the same on this
machine: it starts ``nprocs`` processes, gives each torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR=127.0.0.1`` and a
free ``MASTER_PORT``), runs ``function(*args)`` in each, and returns rank
0's result (as Lightning's ``ddp_notebook`` and accelerate's
``notebook_launcher`` do). ``net.train(..., devices=N)`` is
:func:`train_in_processes`: it launches ``N`` ranks that train the net and
brings rank 0's weights, history and run ids back into this process's net.

From the caller's side the ranks behave as one process:

- **Errors.** An exception a rank raises is raised again here as itself (a
  pydnn2 error as that error), with the rank's traceback as its ``__cause__``
  (:class:`RankTraceback`). When several ranks fail, a pydnn2 error comes
  before any other, then the first failure; a rank that ends without raising
  (SIGKILL, a crash) is torch's ``ProcessExitedException``. Once one rank has
  failed, the others get :data:`GRACE` seconds to end, then are killed.
  ``devices=N`` checks the options before it starts any process
  (:func:`check_training`).
- **Signals.** While the ranks run, SIGINT and SIGTERM to this process (a
  notebook's interrupt, a Ctrl-C, a job scheduler) are passed on to every rank,
  which ``train`` turns into one agreed stop: every rank stops after the same
  batch, rank 0 writes the interrupted checkpoint and the caller gets
  ``TrainingInterrupted``. Each rank runs in a process group of its own, so a
  Ctrl-C in a terminal reaches the ranks once, through this process. A second
  signal is passed on too (the ranks stop at once); a third kills them. A rank
  whose caller dies gets SIGINT (Linux).
- **Nothing outlives the call.** It returns or raises only once every rank has
  ended.

The limits, as for any such launcher:

- **spawn** (the default for a function that can be imported) starts fresh
  interpreters: ``function`` and its arguments are pickled, so the function
  must be importable by name (defined in a module, not in a notebook cell or
  under ``if __name__ == '__main__'`` of an interactive session), and a script
  that calls :func:`launch` must do so under ``if __name__ == '__main__':``.
- **fork** (the default for a function defined in an interactive
  ``__main__``, such as a notebook cell, and what ``devices=N`` uses) copies
  this process, so the function and the net need not be picklable; it
  exists on Linux and macOS only, and CUDA cannot be used in a forked child
  once this process has started it. ``devices=N`` therefore trains CPU nets;
  for GPUs start the script with ``torchrun --nproc_per_node=N``.
- Results and errors travel pickled: rank 0's result must be picklable.
- One launch at a time, and not from inside a process group (under torchrun).
"""

import multiprocessing.connection
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
import warnings

import torch
import torch.multiprocessing as mp

from . import distributed
from .errors import ConfigError, Pydnn2Error, TrainingInterrupted
from .train import checkpoints, runs
from .train.config import TrainConfig
from .train.history import History
from .train.loop import check_files, check_ready

#: Seconds the other ranks get to end by themselves once one has failed; then they are killed.
GRACE = 30
SIGNALS = tuple(getattr(signal, name) for name in ('SIGINT', 'SIGTERM')
                if hasattr(signal, name))


def free_port():
    """A TCP port on 127.0.0.1 that is free now (for ``MASTER_PORT``)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _interactive(function):
    """Whether ``function`` lives in a ``__main__`` that cannot be imported (a notebook,
    the interactive interpreter): spawn could not find it again."""
    main = sys.modules.get('__main__')
    return getattr(function, '__module__', None) == '__main__' and not getattr(
        main, '__file__', None)


def start_method_for(function, start_method=None):
    """``start_method`` checked, or the default for ``function``: fork for one defined
    interactively, spawn otherwise."""
    method = start_method or ('fork' if _interactive(function) else 'spawn')
    if method not in mp.get_all_start_methods():
        raise ConfigError(f'start_method must be one of {mp.get_all_start_methods()} on this '
                          f'system; received {method!r}')
    if method == 'fork' and torch.cuda.is_initialized():
        raise ConfigError('a forked process cannot use CUDA once this process has started '
                          'it; start the script with torchrun --nproc_per_node=N, or launch '
                          "an importable function with start_method='spawn'")
    return method


class RankTraceback(Exception):
    """The traceback of an exception raised in a rank, as text: the ``__cause__`` of that
    exception when :func:`launch` raises it again in the caller."""

    def __str__(self):
        return self.args[0] if self.args else ''


class _Carrying(BaseException):
    """Raised by a rank's function: the exception ``error``, with ``extra`` for the caller
    all the same (rank 0's weights after a failed training)."""

    def __init__(self, error, extra):
        super().__init__(error, extra)
        self.error, self.extra = error, extra


def _detach(parent):
    """A rank's first steps: Python's default SIGINT and SIGTERM handlers, a process
    group of its own (a terminal's Ctrl-C reaches the caller alone, which passes it on
    once), and SIGINT when the caller dies (Linux)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(os, 'setpgid'):
        os.setpgid(0, 0)
    set_death_signal = getattr(mp, '_prctl_pr_set_pdeathsig', None)
    if set_death_signal is not None:
        set_death_signal(signal.SIGINT)
    if os.getppid() != parent:             # the caller died before the line above
        raise SystemExit(1)


def _rank(index, function, args, nprocs, port, writer, parent):
    """One launched process: torchrun's environment, ``function(*args)``, and its outcome
    sent through ``writer`` before the process group is torn down (so that nothing
    going wrong at teardown can lose it)."""
    _detach(parent)
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(nprocs),
                      LOCAL_WORLD_SIZE=str(nprocs), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port))
    if 'OMP_NUM_THREADS' not in os.environ:        # (torchrun's choice: share the cores)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nprocs))
    message, together = _call(index, function, args)
    try:
        writer.send_bytes(message)
        writer.close()
    finally:
        distributed.finish(together=together)    # (no waiting for ranks after an error)


def _call(index, function, args):
    """``(message, together)``: ``function(*args)``'s outcome, pickled (rank 0's result,
    or the exception raised, its traceback and what the function sends back with it),
    and whether the ranks should meet before tearing the group down: they ended well,
    or stopped together (``TrainingInterrupted``)."""
    try:
        value = function(*args)
        outcome = {'value': value if index == 0 else None}
    except BaseException as exc:  # noqa: BLE001 - the caller raises it again
        error, extra = (exc.error, exc.extra) if isinstance(exc, _Carrying) else (exc, None)
        text = ''.join(traceback.format_exception(type(error), error, error.__traceback__))
        outcome = {'error': distributed.picklable(error), 'traceback': text, 'extra': extra}
    together = 'error' not in outcome or isinstance(outcome['error'], TrainingInterrupted)
    try:
        return pickle.dumps(outcome), together
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or extra
        error = ConfigError(f'rank {index} could not send its outcome back to the caller: it '
                            f'must be picklable; received {type(exc).__name__}: {exc}')
        return pickle.dumps({'error': error, 'traceback': '', 'extra': None}), False


def _kill(pid):
    """SIGKILL rank ``pid`` and its own processes (its process group; DataLoader workers)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Ranks:
    """The processes of one launch: started, watched until every one has ended, given
    this process's SIGINT and SIGTERM, and killed when they must be."""

    def __init__(self, function, args, nprocs, method):
        self.function, self.args, self.nprocs = function, args, nprocs
        self.context, self.parent = mp.get_context(method), os.getpid()
        self.processes, self.readers = [], {}      # readers: rank -> its open pipe
        self.outcomes, self.failed = {}, []        # rank -> outcome; failed ranks in order
        self.failed_at = self.killed = None        # when the first failed; whether we killed
        self.ended, self.signals, self.previous = set(), 0, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._forward) for s in SIGNALS}
        try:
            port = free_port()
            for index in range(self.nprocs):
                reader, writer = self.context.Pipe(duplex=False)
                process = self.context.Process(
                    target=_rank, name=f'pydnn2-rank-{index}', args=(
                        index, self.function, self.args, self.nprocs, port, writer, self.parent))
                process.start()
                writer.close()          # (the rank's own copy is the only writer left)
                self.processes.append(process)
                self.readers[index] = reader
        except BaseException:
            self.__exit__()
            raise
        return self

    def _forward(self, signum, frame):
        """SIGINT or SIGTERM to this process: passed on to every rank still running; the
        third one kills them."""
        if os.getpid() != self.parent:     # a forked rank before it reset its handlers
            raise KeyboardInterrupt
        self.signals += 1
        for index, process in enumerate(self.processes):
            if index in self.ended:
                continue
            if self.signals > 2:
                self.killed = True
                _kill(process.pid)
                continue
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self):
        """Read every rank's outcome and wait until every rank has ended (killing the
        rest :data:`GRACE` seconds after one failed); returns ``{rank: outcome}``."""
        sentinels = {p.sentinel: i for i, p in enumerate(self.processes)}
        while sentinels:
            pipes = {reader: i for i, reader in self.readers.items()}
            for item in multiprocessing.connection.wait([*pipes, *sentinels], timeout=1.0):
                if item in sentinels:
                    self._ended(sentinels.pop(item))
                elif pipes[item] in self.readers:
                    self._receive(pipes[item])
            if self.failed_at is not None and not self.killed and sentinels and \
                    time.monotonic() - self.failed_at > GRACE:
                self.killed = True
                for index in sentinels.values():
                    _kill(self.processes[index].pid)
        return self.outcomes

    def _receive(self, index):
        """Rank ``index``'s message (nothing when it ended without one)."""
        reader = self.readers.pop(index)
        try:
            message = reader.recv_bytes()
            outcome = pickle.loads(message)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - an error class this process lacks
            outcome = {'error': RuntimeError(f'rank {index} failed, and its error could not '
                                             f'be read here: {exc}'), 'traceback': ''}
        finally:
            reader.close()
        self._record(index, outcome)

    def _ended(self, index):
        """Rank ``index`` has exited: its message if it left one, else how it died."""
        process = self.processes[index]
        process.join()
        self.ended.add(index)
        if index in self.readers:
            self._receive(index)
        if index not in self.outcomes:
            self._record(index, {'died': process.exitcode})
        self.outcomes[index]['exitcode'] = process.exitcode

    def _record(self, index, outcome):
        self.outcomes[index] = outcome
        if 'value' not in outcome:
            self.failed.append(index)
            if self.failed_at is None:
                self.failed_at = time.monotonic()

    def failure(self):
        """The exception to raise in the caller (with the rank's traceback as its
        ``__cause__``), or None when every rank ended well."""
        for index, outcome in sorted(self.outcomes.items()):
            if 'value' in outcome and outcome.get('exitcode'):
                warnings.warn(f'rank {index} ended with {_how(outcome["exitcode"])} after its '
                              'function had returned; its result stands', RuntimeWarning,
                              stacklevel=3)
        if self.signals > 2 and self.killed:
            return KeyboardInterrupt()
        if not self.failed:
            return None
        ours = [i for i in self.failed if isinstance(self.outcomes[i].get('error'), Pydnn2Error)]
        index = (ours or self.failed)[0]
        outcome = self.outcomes[index]
        if 'error' not in outcome:
            code, how = outcome['died'], _how(outcome['died'])
            return mp.ProcessExitedException(
                f'rank {index} of {self.nprocs} (pid {self.processes[index].pid}) ended with '
                f'{how} before its function returned', error_index=index,
                error_pid=self.processes[index].pid, exit_code=code,
                signal_name=how.split()[-1] if code < 0 else None)
        error = outcome['error']
        error.__cause__ = RankTraceback(f'rank {index} of {self.nprocs}:\n{outcome["traceback"]}')
        return error

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        for index, process in enumerate(self.processes):
            if index not in self.ended:        # (only when this process failed here)
                _kill(process.pid)
            process.join()
        for reader in self.readers.values():
            reader.close()
        return False


def _how(exitcode):
    """An exit status in words: ``'signal SIGABRT'`` or ``'exit status 1'``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f'signal {signal.Signals(-exitcode).name}'
        except ValueError:
            return f'signal {-exitcode}'
    return f'exit status {exitcode}'


def _run(function, args, nprocs, start_method):
    """Run ``function(*args)`` as ``nprocs`` ranks; ``(outcomes, failure)`` once every one
    has ended: ``{rank: outcome}`` and the exception to raise, or None."""
    nprocs = _processes(nprocs)
    if distributed.active() or distributed.environment() is not None:
        raise ConfigError('launch starts the ranks of a new group; this process is already '
                          'one rank of a group (torchrun): call the function directly')
    method = start_method_for(function, start_method)
    with _Ranks(function, args, nprocs, method) as ranks:
        ranks.wait()
    return ranks.outcomes, ranks.failure()


def launch(function, *args, nprocs=2, start_method=None):
    """Run ``function(*args)`` in ``nprocs`` new processes on this machine, as the ranks
    of one ``torch.distributed`` group (what ``torchrun --standalone
    --nproc_per_node=nprocs`` does for a script); returns rank 0's result.

    Inside ``function``, ``net.train(...)`` trains data-parallel exactly as under
    torchrun. An exception raised in a rank is raised here, as itself, once every
    rank has ended; SIGINT and SIGTERM to this process are passed on to the ranks.
    See the module's notes for both, and for spawn and fork (``start_method``).

    >>> launch(print, 'hello', nprocs=2)          # doctest: +SKIP
    """
    outcomes, failure = _run(function, args, nprocs, start_method)
    if failure is not None:
        raise failure
    return outcomes[0]['value']


def _processes(nprocs):
    """``nprocs`` checked: an int of at least 1."""
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ConfigError(f'the number of processes must be an int of at least 1; received '
                          f'{nprocs!r}')
    return nprocs


def check_training(net, devices, updater, epochs=200, final_epochs=0, l1_reg=0, l2_reg=0,
                   **options):
    """Refuse, before any process starts, what ``net.train(updater, ...,
    devices=devices, **options)`` would refuse before its process group starts: a net
    not on the CPU, unknown or bad options, a rule, net or data not ready, a batch that
    does not split over ``devices`` processes (or a global batch larger than the
    training set), ``sync_batch_norm`` (CUDA only), an output folder that is not
    writable, and a checkpoint to resume that does not exist."""
    if torch.device(net.device).type != 'cpu':
        raise ConfigError(f'devices={devices} trains in forked processes, which cannot use '
                          f'{net.device}; start the script with torchrun '
                          f'--nproc_per_node={devices} for one process per GPU')
    config = options.get('config')
    if config is None:
        config = TrainConfig.from_options(
            epochs=epochs, final_epochs=final_epochs, l1_reg=l1_reg, l2_reg=l2_reg,
            **{k: v for k, v in options.items() if k != 'config'})
    check_ready(net, updater, config)
    distributed.check_split(net.batch_size, net.preprocessor.num_rows('train'), devices,
                            config.per_rank_batch)
    if config.sync_batch_norm:
        raise ConfigError(f'sync_batch_norm=True needs CUDA nets (torch.nn.SyncBatchNorm runs '
                          f'on GPUs only), and devices={devices} trains CPU processes; start '
                          f'the script with torchrun --nproc_per_node={devices} on GPUs')
    check_files(net, config)
    if config.resume is True and not checkpoints.list_checkpoints(net):
        checkpoints.newest_state(net)         # raises the error naming the folder


def _train_rank(net, args, options):
    """One rank of :func:`train_in_processes`: train; rank 0 sends back what
    :func:`_sent_back` gives, whether training returned or raised."""
    try:
        net.train(*args, **options)
    except BaseException as exc:  # noqa: BLE001 - raised again, carrying rank 0's state
        raise _Carrying(exc, _sent_back(net)) from None
    return _sent_back(net)


def _sent_back(net):
    """On rank 0: the net's weights, its history and the ids of the runs it trained in
    (None on the other ranks)."""
    if not distributed.is_writer():
        return None
    history = getattr(net, 'history', None)
    return {'weights': net.get_params(), 'history': None if history is None else dict(history),
            'runs': sorted(runs.earlier_runs(net))}


def train_in_processes(net, devices, updater, epochs=200, final_epochs=0, l1_reg=0,
                       l2_reg=0, **options):
    """``net.train(updater, epochs, final_epochs, l1_reg, l2_reg, **options)`` in
    ``devices`` forked CPU processes, data-parallel, after :func:`check_training`.

    Rank 0's weights, history and run ids come back into ``net`` however training
    ends (so that the same net object replaces its own earlier run's files, as in
    one process); its learning rule, ``rng`` and preprocessor stay as they were in
    this process. Returns the history; raises what a rank raised (the
    ``TrainingInterrupted`` of a signal, with ``history`` being ``net.history``).
    """
    devices = _processes(devices)
    check_training(net, devices, updater, epochs, final_epochs, l1_reg, l2_reg, **options)
    outcomes, failure = _run(_train_rank, (net, (updater, epochs, final_epochs, l1_reg,
                                                 l2_reg), options), devices, 'fork')
    first = outcomes.get(0, {})
    back = first.get('value') or first.get('extra')
    if back is not None:
        net.set_params(back['weights'])
        if back['history'] is not None:
            net.history = History(back['history'])
        runs.earlier_runs(net).update(back['runs'])
    if failure is not None:
        if isinstance(failure, TrainingInterrupted):
            failure.history = net.history
        raise failure
    return net.history
