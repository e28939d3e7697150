"""What a run finds in its folder (issue 21, items 1, 4, 14 and 16).

- a named pipe or a folder named like a run's file is never opened, replaced or
  deleted: ``train`` refuses with a ``ConfigError`` naming it, at once (a pipe
  used to block it for ever: those tests run in a child process with a time limit);
- the temporary files that a killed write left (``.<file>.<8 characters>.tmp``)
  are removed when a run of that net starts or resumes, holding the lock, and
  nothing else is;
- ``resume='auto'`` over the best net of its own dead attempt (the stale lock of
  a ``resume='auto'`` run names it) restarts that run afresh instead of refusing.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.train.checkpoints import run_of
from pydnn2.train.runs import _process_start

CHILD = os.path.join(os.path.dirname(__file__), 'run_files_child.py')
TIMEOUT = 120


def child(folder, resume, epochs, *flags, timeout=TIMEOUT):
    """Run the child to its end (killed after ``timeout`` s: a hang fails the test)."""
    try:
        return subprocess.run([sys.executable, CHILD, str(folder), resume, str(epochs),
                               *map(str, flags)], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS='1'))
    except subprocess.TimeoutExpired:
        pytest.fail(f'train ran over {timeout} s (it blocked; the child was killed)')


def contents(folder):
    """Every entry of ``folder``: a file's bytes, or what a folder holds."""
    return {name: ((folder / name).read_bytes() if (folder / name).is_file()
                   else sorted(os.listdir(folder / name)) if (folder / name).is_dir()
                   else 'other') for name in sorted(os.listdir(folder))}


def run_ids(folder):
    return {name: (run_of(str(folder / name)) or {}).get('id')
            for name in os.listdir(folder) if name.endswith('.pt')}


def write_lock(folder, name, pid, **fields):
    lock = folder / f'{name}.lock'
    lock.write_text(json.dumps({'pid': pid, 'host': socket.gethostname(), 'run': 'ab' * 16,
                                'process_start': _process_start(pid), **fields}))
    return lock


def a_dead_pid():
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    return gone.pid


# -- item 1: a named pipe is never opened ------------------------------------------------------

@pytest.fixture(scope='module')
def one_checkpoint(tmp_path_factory):
    """A folder with the files of a 1-epoch run: its best net and checkpoint 1."""
    folder = tmp_path_factory.mktemp('one')
    result = child(folder, 'none', 1)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs named pipes')
@pytest.mark.parametrize('resume', ['none', 'true', 'auto'])
@pytest.mark.slow
def test_a_named_pipe_named_like_a_checkpoint_is_refused_not_opened(one_checkpoint, tmp_path,
                                                                    resume):
    for name in os.listdir(one_checkpoint):
        (tmp_path / name).write_bytes((one_checkpoint / name).read_bytes())
    os.mkfifo(tmp_path / 'net_checkpoint_0005.pt')
    before = contents(tmp_path)
    result = child(tmp_path, resume, 2)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith('ConfigError: ')
    assert "'net_checkpoint_0005.pt' (a named pipe)" in result.stdout
    assert contents(tmp_path) == before                         # nothing changed


# -- item 14: folders where files go ----------------------------------------------------------

def test_a_lock_file_that_is_a_folder_is_a_config_error_and_stays(small_net, tmp_path):
    (tmp_path / 'net.lock').mkdir()
    (tmp_path / 'net.lock' / 'mine.txt').write_text('keep me')
    with pytest.raises(ConfigError, match=r"lock file .*net\.lock' of a net named 'net' is "
                                          'a folder, not a regular file'):
        small_net().train(nn.Adam(0.01), epochs=1)
    assert contents(tmp_path) == {'net.lock': ['mine.txt']}


@pytest.mark.parametrize('name', ['net_checkpoint_0007.pt', 'net_best_net.pt'])
@pytest.mark.parametrize('overwrite', [False, True])
def test_a_folder_named_like_a_run_file_is_refused_and_nothing_is_deleted(
        small_net, tmp_path, name, overwrite):
    small_net(name='old').train(nn.Adam(0.01), epochs=1, checkpoint_every=1)
    for old in os.listdir(tmp_path):             # another run's files of the name 'net'
        os.rename(tmp_path / old, tmp_path / old.replace('old_', 'net_'))
    if name == 'net_best_net.pt':
        os.remove(tmp_path / name)
    (tmp_path / name).mkdir()
    (tmp_path / name / 'mine.txt').write_text('keep me')
    before = contents(tmp_path)
    with pytest.raises(ConfigError, match=f"holds '{name}' \\(a folder\\), named like the "
                                          "files training a net named 'net' writes"):
        small_net().train(nn.Adam(0.01), epochs=1, checkpoint_every=1, overwrite=overwrite)
    assert contents(tmp_path) == before


# -- item 16: temporary files of killed writes ------------------------------------------------

ORPHANS = ['.net_checkpoint_0002.pt.abcd_123.tmp', '.net_best_net.pt.zz99yy88.tmp',
           '.net_checkpoint_0004_interrupted.pt.a1b2c3d4.tmp', '.net_final_net.pt.qwertyui.tmp',
           '.net.lock.l0ck1234.tmp']
NOT_ORPHANS = ['.other_checkpoint_0002.pt.abcd_123.tmp',    # another net's
               '.net_checkpoint_0002.pt.tmp',                # not atomic_write's name
               '.net_checkpoint_0002.pt.ABCD1234.tmp',
               '.net.pt.abcd1234.tmp',                       # save(), not a run's file
               '.net_checkpoint_x.pt.abcd1234.tmp',
               'net_checkpoint_0002.pt.abcd1234.tmp']


def test_orphaned_temporary_files_of_the_nets_run_files_go_when_a_run_starts(small_net,
                                                                            tmp_path):
    for name in ORPHANS + NOT_ORPHANS:
        (tmp_path / name).write_bytes(b'half a file')
    (tmp_path / '.net_checkpoint_0003.pt.abcdefgh.tmp').mkdir()   # a folder: never deleted
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock = write_lock(tmp_path, 'net', sleeper.pid)
        with pytest.raises(ConfigError, match='another process'):
            small_net().train(nn.Adam(0.01), epochs=1)     # its writes may be live: kept
        assert all((tmp_path / name).exists() for name in ORPHANS)
    finally:
        sleeper.kill()
        sleeper.wait()
    lock.unlink()
    small_net().train(nn.Adam(0.01), epochs=1)
    assert sorted(os.listdir(tmp_path)) == sorted(
        NOT_ORPHANS + ['.net_checkpoint_0003.pt.abcdefgh.tmp', 'net_best_net.pt'])


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
@pytest.mark.slow
def test_a_checkpoint_write_killed_half_way_leaves_nothing_after_the_resume(tmp_path):
    out, marker = tmp_path / 'out', tmp_path / 'hung'
    out.mkdir()
    hung = subprocess.Popen([sys.executable, CHILD, str(out), 'none', '3',
                             '--hang-in-checkpoint', '2', str(marker)],
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists() and hung.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)                       # (polls for the file; lands in no phase)
    hung.kill()
    hung.wait()
    assert marker.exists(), 'the child never reached its second checkpoint'
    left = [n for n in os.listdir(out) if n.endswith('.tmp')]
    assert any(n.startswith('.net_checkpoint_0002.pt.') for n in left)
    # (the best net's too, when the background writer was writing it at the kill)
    assert all(n.startswith(('.net_checkpoint_0002.pt.', '.net_best_net.pt.')) for n in left)
    result = child(out, 'true', 3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'took over the stale lock' in result.stderr
    assert sorted(os.listdir(out)) == ['net_best_net.pt', 'net_checkpoint_0001.pt',
                                       'net_checkpoint_0002.pt', 'net_checkpoint_0003.pt']


# -- item 4: resume='auto' restarts its own dead attempt --------------------------------------

def test_resume_auto_restarts_afresh_over_the_best_net_of_its_dead_attempt(small_net,
                                                                           tmp_path):
    small_net().train(nn.Adam(0.01), epochs=1)       # died after its best net, no checkpoint
    (dead,) = set(run_ids(tmp_path).values())
    write_lock(tmp_path, 'net', a_dead_pid(), run=dead, process_start=None, auto=True)
    with pytest.warns(UserWarning, match='took over the stale lock'):
        history = small_net().train(nn.Adam(0.01), epochs=2, checkpoint_every=1,
                                    resume='auto')
    assert history['epoch'] == [1, 2]                   # afresh ...
    assert set(run_ids(tmp_path).values()) == {dead}     # ... as the dead run, restarted
    assert sorted(os.listdir(tmp_path)) == ['net_best_net.pt', 'net_checkpoint_0001.pt',
                                            'net_checkpoint_0002.pt']


@pytest.mark.parametrize('lock', ['none', 'not auto', 'another run'])
def test_resume_auto_still_refuses_the_files_of_another_run(small_net, tmp_path, lock):
    small_net().train(nn.Adam(0.01), epochs=1)
    (other,) = set(run_ids(tmp_path).values())
    if lock != 'none':                  # a finished run leaves no lock
        write_lock(tmp_path, 'net', a_dead_pid(), process_start=None, auto=lock != 'not auto',
                   run=other if lock == 'not auto' else 'cd' * 16)
    before = (tmp_path / 'net_best_net.pt').read_bytes()
    with pytest.warns(UserWarning) if lock != 'none' else contextlib.nullcontext(), \
            pytest.raises(ConfigError, match='another training run'):
        small_net().train(nn.Adam(0.01), epochs=1, resume='auto')
    assert (tmp_path / 'net_best_net.pt').read_bytes() == before
