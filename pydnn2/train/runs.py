"""Runs own their files: the run identity, the lock, and the check before a run writes.

Each call of ``train`` is one *run* (a resumed run goes on with the identity
of the run it resumes). A :class:`Run` has an id (a ``uuid4`` hex) that
every file it writes carries under ``'run'``: the best net, the final net
and each checkpoint. Before anything is written:

- :class:`RunLock` creates ``<output_dir>/<name>.lock`` (``O_EXCL``: only
  one process can) holding the owner's pid, host and run id; while that
  process lives, a second ``train`` of the same name in the same folder is
  refused. A lock whose process is gone (a crash, SIGKILL) is taken over with
  a warning. The lock goes when ``train`` ends, however it ends.
- :func:`claim` refuses to start when the folder holds another run's files
  of this name (``<name>_best_net.pt``, ``<name>_final_net.pt``,
  ``<name>_checkpoint_*.pt``), unless ``overwrite=True``, which deletes
  them first; a resume first passes :func:`pydnn2.train.compat.check`.
  Files of an earlier run of the *same net object* (``net.train`` called
  again, in this process) are not another's: the new run replaces them, its
  checkpoints deleted at once, so that only the new run's remain to resume.

Checkpoint pruning and ``resume=True`` see only the run's own checkpoints
(:mod:`pydnn2.train.checkpoints`).

Under torchrun (:mod:`pydnn2.distributed`) rank 0 alone does all this:
:class:`OwnedRun` identifies, locks and claims there, and the other ranks receive
the run (with the checkpoint to resume, so they need not see rank 0's
folder) or the very error rank 0 met.
"""

import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
import uuid
import warnings
import weakref

from .. import distributed, files
from ..errors import ConfigError, FileFormatError
from ..tracebacks import is_internal
from . import checkpoints, compat

LOCK_SUFFIX = '.lock'
_RAN = weakref.WeakKeyDictionary()      # net -> ids of the runs it has trained in


def _warn(message):
    """A UserWarning shown at the user's line (the first frame outside pydnn2)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and is_internal(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


@dataclasses.dataclass
class Run:
    """One training run's identity, and the checkpoint it resumes (if any)."""

    id: str                 # uuid4 hex, in every file the run writes
    started: str            # when the run first started (local time, ISO 8601)
    checks: dict            # what a later resume compares: annealer kind, data fingerprint
    path: str = None        # the checkpoint resumed from
    state: dict = None      # its contents (restored only after compat.check passed)

    def record(self):
        """The ``'run'`` entry of each file the run writes."""
        return {'id': self.id, 'started': self.started}

    def stamped(self, state):
        """A file's dict with this run's record."""
        return {**state, 'run': self.record()}


def run_files(net):
    """The files of runs named like ``net`` in its folder: best net, final net,
    checkpoints."""
    folder = net.output_dir or '.'
    named = [os.path.join(folder, f'{net.name}_{kind}{files.EXTENSION}')
             for kind in ('best_net', 'final_net')]
    return [p for p in named if os.path.isfile(p)] + checkpoints.list_checkpoints(net)


def identify(net, rule, config):
    """This call's run: a new one, or the one of the checkpoint ``config.resume`` names
    (read here, restored only after :func:`claim`)."""
    checks = {'annealer': type(rule.annealer).__name__,
              'data': compat.data_fingerprint(net.preprocessor)}
    run = Run(uuid.uuid4().hex, time.strftime('%Y-%m-%dT%H:%M:%S'), checks)
    resume = config.resume
    if resume == 'auto':            # (the newest checkpoint if there is one: a restarted job)
        resume = bool(checkpoints.list_checkpoints(net))
    if not resume:
        return run
    if resume is True:
        path, state = checkpoints.newest_state(net)
    else:
        path = os.fspath(config.resume)
        state = files.read_file(path, 'checkpoint')
    if 'session' not in state:
        raise FileFormatError(f'{path!r} is a checkpoint of an older pydnn2 layout; it can be '
                              'loaded with load_checkpoint but not resumed')
    saved = state.get('run') or {}
    run.path, run.state = path, state
    if isinstance(saved.get('id'), str):    # (a checkpoint without one: the run gets one now)
        run.id, run.started = saved['id'], str(saved.get('started'))
    return run


class OwnedRun:
    """``with OwnedRun(net, rule, config) as run``: the run, identified, locked
    (:class:`RunLock`) and claimed (:func:`claim`) for the block; the lock goes when it
    ends. Under torchrun rank 0 alone does this, and every other rank receives the
    run, or raises the error rank 0 met."""

    def __init__(self, net, rule, config):
        self.net, self.rule, self.config = net, rule, config
        self.stack = contextlib.ExitStack()

    def _take(self):
        run = identify(self.net, self.rule, self.config)
        self.stack.enter_context(RunLock(self.net, run.id))
        claim(self.net, self.rule, self.config, run)    # nothing has changed before this
        return run

    def __enter__(self):
        try:
            return distributed.on_writer(self._take)
        except BaseException:
            self.stack.close()
            raise

    def __exit__(self, *exc):
        self.stack.close()
        return False


def _describe(owners):
    """``run 3f2a9c1e (started ...): a.pt, b.pt; ...`` for ``{path: run record}``."""
    by_run = {}
    for path, record in owners.items():
        record = record or {}
        key = (f"run {record['id'][:8]} (started {record.get('started')})"
               if record.get('id') else 'files without a run id (or unreadable)')
        by_run.setdefault(key, []).append(os.path.basename(path))
    return '; '.join(f'{key}: {", ".join(names)}' for key, names in by_run.items())


def others(net, run):
    """``{path: run record}`` of the files in the folder another run owns. A fresh
    run owns none yet; a resumed one tolerates files without a run id (its own,
    written before runs had ids)."""
    owners = {path: checkpoints.run_of(path) for path in run_files(net)}
    if run.state is None:
        return owners
    return {p: r for p, r in owners.items() if r and r.get('id') not in (None, run.id)}


def claim(net, rule, config, run):
    """Refuse, before anything changes, a resume that does not fit or a folder holding
    another run's files (``overwrite=True`` deletes those instead); then the run is
    the net's and its earlier runs' checkpoints go."""
    if run.state is not None:
        compat.check(run.state, run.path, net, rule, run.checks['data'],
                     config.accept_data_change)
    found = others(net, run)
    earlier = _RAN.setdefault(net, set())
    mine = [p for p, r in found.items() if r and r.get('id') in earlier]
    found = {p: r for p, r in found.items() if p not in mine}
    if found:
        _refuse_or_delete(net, config, run, found)
    for path in filter(checkpoints.is_checkpoint, mine):
        os.remove(path)
    earlier.add(run.id)


def _refuse_or_delete(net, config, run, found):
    """Another run's files: refuse, or delete them with ``overwrite=True``."""
    folder = os.path.abspath(net.output_dir or '.')
    if not config.overwrite:
        resumable = any(checkpoints.is_checkpoint(p) for p in found)
        raise ConfigError(
            f'output_dir {folder!r} already holds the files of another training run of a net '
            f'named {net.name!r} ({_describe(found)}); this run would overwrite or prune them. '
            + ('Resume that run with train(..., resume=True), or pass' if resumable and
               run.state is None else 'Pass')
            + ' overwrite=True to delete them and start afresh, or give this net another '
            'name or output_dir')
    for path in found:
        os.remove(path)
    _warn(f'overwrite=True: deleted the files of another run of {net.name!r} in {folder!r} '
          f'({_describe(found)})')


def _process_start(pid):
    """When process ``pid`` started (boot id and start tick, from /proc), or None where
    that cannot be read: tells a live owner from a new process reusing its pid."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read()
        with open('/proc/sys/kernel/random/boot_id') as f:
            boot = f.read().strip()
    except OSError:
        return None
    return f'{boot}:{stat.rsplit(b")", 1)[1].split()[19].decode()}'


def _alive(holder):
    """Whether the process that wrote lock contents ``holder`` may still run (another
    host's, or one this system cannot check, counts as alive)."""
    pid = holder.get('pid')
    if holder.get('host') != socket.gethostname() or os.name == 'nt':
        return True
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                   # alive, another user's
    started, now = holder.get('process_start'), _process_start(pid)
    return started is None or now is None or started == now


def _read_lock(path, wait=1.0):
    """The lock's contents (a dict); None when unreadable after ``wait`` seconds (a
    writer between creating and filling it gets that long); {} when it is gone."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(path, encoding='utf-8') as f:
                holder = json.load(f)
            if isinstance(holder, dict):
                return holder
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


class RunLock:
    """``<output_dir>/<name>.lock``: one live process at a time trains a name in a folder.

    Entering creates the file with ``O_EXCL`` (so of two processes only one
    can) holding ``{'pid', 'host', 'run', 'process_start', 'token'}``. If it
    exists and its process lives, :class:`~pydnn2.errors.ConfigError` names
    the pid; if that process is gone, the stale lock is taken over with a
    warning. Leaving removes the lock, if it is still this one.
    """

    def __init__(self, net, run_id):
        self.path = os.path.join(net.output_dir or '.', net.name + LOCK_SUFFIX)
        self.name, self.folder = net.name, os.path.abspath(net.output_dir or '.')
        self.contents = {'pid': os.getpid(), 'host': socket.gethostname(), 'run': run_id,
                         'process_start': _process_start(os.getpid()),
                         'token': uuid.uuid4().hex}

    def _create(self):
        try:
            with open(self.path, 'x', encoding='utf-8') as f:    # O_CREAT | O_EXCL
                json.dump(self.contents, f)
        except FileExistsError:
            return False
        return True

    def _refuse(self, holder):
        who = ('this process' if holder.get('pid') == os.getpid() else
               f"another process (pid {holder.get('pid')} on host {holder.get('host')!r})")
        raise ConfigError(
            f'{who} is training a net named {self.name!r} in {self.folder!r} (run '
            f"{str(holder.get('run'))[:8]}, lock file {self.path!r}); two runs must not write "
            'the same files. Wait for it to end, or give this net another name or output_dir; '
            'if no such training runs, delete the lock file')

    def _take_over(self, holder):
        """Move a stale lock aside; keep it only if it is still the one judged stale."""
        aside = f'{self.path}.{os.getpid()}.stale'
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _read_lock(aside, wait=0) != holder:     # replaced meanwhile: put it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
            os.remove(aside)
            return
        os.remove(aside)
        holder = holder or {}
        _warn(f'took over the stale lock {self.path!r} of process {holder.get("pid")} (run '
              f'{str(holder.get("run"))[:8]}), which no longer runs')

    def __enter__(self):
        for _ in range(5):
            if self._create():
                return self
            holder = _read_lock(self.path)
            if holder and _alive(holder):
                self._refuse(holder)
            if holder != {}:
                self._take_over(holder)
        raise ConfigError(f'could not take the lock {self.path!r}: other processes keep '
                          'replacing it')

    def __exit__(self, *exc):
        if _read_lock(self.path, wait=0) == self.contents:
            os.remove(self.path)
        return False
