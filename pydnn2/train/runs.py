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
import stat
import sys
import time
import uuid
import warnings
import weakref

from .. import files
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
    job: str = None         # under torchrun: the job (see job_of_this_process)

    def record(self):
        """The ``'run'`` entry of each file the run writes."""
        record = {'id': self.id, 'started': self.started}
        return {**record, 'job': self.job} if self.job else record

    def stamped(self, state):
        """A file's dict with this run's record."""
        return {**state, 'run': self.record()}


def job_of_this_process():
    """Under torchrun, the job this process is a worker of: the host, pid and start of the
    torchrun agent that started it, the same for every restart of the job's workers
    (``'host:pid:start'``); None elsewhere, or where the agent's start cannot be read."""
    if 'TORCHELASTIC_RUN_ID' not in os.environ:
        return None
    agent = os.getppid()
    started = _process_start(agent)
    return None if started is None else f'{socket.gethostname()}:{agent}:{started}'


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
    run = Run(uuid.uuid4().hex, time.strftime('%Y-%m-%dT%H:%M:%S'), checks,
              job=job_of_this_process())
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
    ends. A net with ``output_dir=None`` writes no file: its run is identified only.
    Under torchrun rank 0 alone does this, and every other rank receives the
    run, or raises the error rank 0 met: ``on_writer`` is the run's strategy's
    :meth:`~pydnn2.train.strategy.Strategy.on_writer` (by default this process does it)."""

    def __init__(self, net, rule, config, on_writer=None):
        self.net, self.rule, self.config = net, rule, config
        self.on_writer = on_writer or (lambda function: function())
        self.stack = contextlib.ExitStack()

    def _take(self):
        run = identify(self.net, self.rule, self.config)
        if self.net.output_dir is None:        # writes no file: nothing to lock or claim
            if run.state is not None:          # but a checkpoint given by path must fit
                compat.check(run.state, run.path, self.net, self.rule, run.checks['data'],
                             self.config.accept_data_change)
            return run
        lock = self.stack.enter_context(RunLock(self.net, run.id, self.config.resume == 'auto'))
        claim(self.net, self.rule, self.config, run, lock)  # nothing has changed before this
        remove_orphans(self.net)
        return run

    def __enter__(self):
        try:
            return self.on_writer(self._take)
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


def not_files(net):
    """Refuse (a :class:`ConfigError`) when something named like this net's run files in
    its folder is not a regular file (a folder, a named pipe): a run never opens,
    replaces or deletes such a thing."""
    folder = net.output_dir or '.'
    named = [os.path.join(folder, f'{net.name}_{kind}{files.EXTENSION}')
             for kind in ('best_net', 'final_net')] + checkpoints.named_like_checkpoints(net)
    odd = [p for p in named if os.path.lexists(p) and not os.path.isfile(p)]
    if odd:
        raise ConfigError(
            f'output_dir {os.path.abspath(folder)!r} holds '
            f'{", ".join(f"{os.path.basename(p)!r} ({_kind(p)})" for p in odd)}, named like '
            f'the files training a net named {net.name!r} writes, but not a regular file; '
            'pydnn2 never opens, replaces or deletes it: move or rename it, or give this net '
            'another name or output_dir')


def _kind(path):
    """What ``path`` is, in words: a folder, a named pipe, a link to a folder, ..."""
    if not os.path.exists(path):
        return 'a broken link'
    link = 'a link to ' if os.path.islink(path) else ''
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return link + 'a folder'
    if stat.S_ISFIFO(mode):
        return link + 'a named pipe'
    return link + ('a file' if stat.S_ISREG(mode) else 'a special file')


def _restarted(config, run, lock, found):
    """The run record of the dead attempt of this job whose files ``found`` holds, when
    ``resume='auto'`` starts afresh: files of this torchrun job (``run.job``), or of the
    ``resume='auto'`` run whose stale lock was taken over. None otherwise."""
    if config.resume != 'auto' or run.state is not None:
        return None
    dead = lock.dead if lock is not None and (lock.dead or {}).get('auto') else {}
    records = [r for r in found.values() if r and r.get('id') and (
        (run.job and r.get('job') == run.job) or r['id'] == dead.get('run'))]
    ids = {r['id'] for r in records}
    return records[0] if len(ids) == 1 else None


def earlier_runs(net):
    """The ids of the runs ``net`` has trained in, in this process: a set, which
    ``net.train(..., devices=N)`` adds its ranks' runs to (the same net object replaces
    its own earlier runs' files)."""
    return _RAN.setdefault(net, set())


def claim(net, rule, config, run, lock=None):
    """Refuse, before anything changes, a resume that does not fit or a folder holding
    another run's files (``overwrite=True`` deletes those instead); then the run is
    the net's and its earlier runs' checkpoints go. A ``resume='auto'`` run that starts
    afresh over the files of its job's dead attempt (``_restarted``) is that run,
    restarted: it takes its id."""
    not_files(net)
    if run.state is not None:
        compat.check(run.state, run.path, net, rule, run.checks['data'],
                     config.accept_data_change)
    found = others(net, run)
    restarted = _restarted(config, run, lock, found)
    if restarted:
        run.id, run.started = restarted['id'], str(restarted.get('started'))
        lock.relabel(run.id)
        found = {p: r for p, r in found.items() if (r or {}).get('id') != run.id}
    earlier = earlier_runs(net)
    mine = [p for p, r in found.items() if r and r.get('id') in earlier]
    found = {p: r for p, r in found.items() if p not in mine}
    if found:
        _refuse_or_delete(net, config, run, found)
    for path in filter(checkpoints.is_checkpoint, mine):
        os.remove(path)
    earlier.add(run.id)


def _is_run_file(net, name):
    """Whether the file name ``name`` is one a run of ``net`` writes (its lock included)."""
    return (name in (f'{net.name}_best_net{files.EXTENSION}',
                     f'{net.name}_final_net{files.EXTENSION}', net.name + LOCK_SUFFIX)
            or checkpoints.is_checkpoint_of(net, name))


def remove_orphans(net):
    """Delete the temporary files that writes of this net's run files left when they were
    killed half-way (``.<file>.<8 characters>.tmp``, :func:`pydnn2.files.temporary_target`).
    Called holding the lock: no live run of this name in this folder is writing them."""
    with os.scandir(net.output_dir or '.') as entries:
        orphans = [e.path for e in entries if e.is_file(follow_symlinks=False)
                   and _is_run_file(net, files.temporary_target(e.name) or '')]
    for path in orphans:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


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
    can) holding ``{'pid', 'host', 'run', 'process_start', 'token', 'auto'}``
    (``auto``: the run was started with ``resume='auto'``). If it exists and
    its process lives, :class:`~pydnn2.errors.ConfigError` names the pid; if
    that process is gone, the stale lock is taken over with a warning (its
    contents kept as ``dead``). Something at the lock's path that is not
    a regular file (a folder) is a ``ConfigError``. Leaving removes the lock,
    if it is still this one.
    """

    def __init__(self, net, run_id, auto=False):
        self.path = os.path.join(net.output_dir or '.', net.name + LOCK_SUFFIX)
        self.name, self.folder = net.name, os.path.abspath(net.output_dir or '.')
        self.contents = {'pid': os.getpid(), 'host': socket.gethostname(), 'run': run_id,
                         'process_start': _process_start(os.getpid()),
                         'token': uuid.uuid4().hex, 'auto': bool(auto)}
        self.dead = None        # the contents of the stale lock taken over, if one was

    def _create(self):
        try:
            with open(self.path, 'x', encoding='utf-8') as f:    # O_CREAT | O_EXCL
                json.dump(self.contents, f)
        except FileExistsError:
            self._check_regular()
            return False
        return True

    def _check_regular(self):
        """Refuse a lock path that holds a folder, a named pipe or another non-file."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f'the lock file {self.path!r} of a net named {self.name!r} is '
                f'{_kind(self.path)}, not a regular file; pydnn2 never opens, replaces or '
                'deletes it: move or rename it, or give this net another name or output_dir')

    def relabel(self, run_id):
        """Record ``run_id`` as the run holding the lock (a restart that took its dead
        attempt's id)."""
        contents = {**self.contents, 'run': run_id}
        files.atomic_write_text(self.path, json.dumps(contents))
        self.contents = contents

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
        self.dead = holder
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
