"""Runs own their files: run ids, the refusal to touch another run's files, the lock."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.train.checkpoints import list_checkpoints, run_of
from pydnn2.train.runs import _process_start


def contents(folder):
    """Every file in ``folder`` and its bytes."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def run_ids(folder):
    """The run id each pydnn2 file in ``folder`` carries."""
    return {name: (run_of(str(folder / name)) or {}).get('id')
            for name in os.listdir(folder) if name.endswith('.pt')}


@pytest.mark.slow
def test_a_fresh_run_refuses_a_folder_holding_another_runs_files(small_net, tmp_path):
    small_net(name='d').train(nn.Adam(0.01), epochs=10, checkpoint_every=1)
    before = contents(tmp_path)
    assert sorted(before) == ['d_best_net.pt', 'd_checkpoint_0008.pt', 'd_checkpoint_0009.pt',
                              'd_checkpoint_0010.pt']
    old = set(run_ids(tmp_path).values())
    assert len(old) == 1 and None not in old
    with pytest.raises(ConfigError) as info:
        small_net(name='d').train(nn.Adam(0.01), epochs=3, checkpoint_every=1)
    message = str(info.value)
    for part in ("another training run of a net named 'd'", f'run {min(old)[:8]}',
                 'd_checkpoint_0010.pt', 'resume=True', 'overwrite=True', 'another name'):
        assert part in message
    assert contents(tmp_path) == before                  # bit for bit, and nothing added

    with pytest.warns(UserWarning, match="overwrite=True: deleted the files of another run") \
            as warned:
        small_net(name='d').train(nn.Adam(0.01), epochs=3, checkpoint_every=1, overwrite=True)
    assert warned[0].filename == __file__                # shown at the user's line
    assert [os.path.basename(p) for p in list_checkpoints(small_net(name='d'))] == [
        'd_checkpoint_0001.pt', 'd_checkpoint_0002.pt', 'd_checkpoint_0003.pt']
    new = set(run_ids(tmp_path).values())
    assert len(new) == 1 and new != old
    again = small_net(name='d').train(nn.Adam(0.01), epochs=4, resume=True)
    assert again['epoch'] == [1, 2, 3, 4]                # the new run resumed, not the old one


def test_overwrite_is_checked(small_net):
    with pytest.raises(ConfigError, match='overwrite must be True or False'):
        small_net().train(nn.Adam(0.01), epochs=1, overwrite='yes')


def test_every_file_carries_the_run_id_and_a_resume_keeps_it(small_net, tmp_path):
    small_net().train(nn.Adam(0.01), epochs=2, checkpoint_every=1)
    first = run_ids(tmp_path)
    assert sorted(first) == ['net_best_net.pt', 'net_checkpoint_0001.pt',
                             'net_checkpoint_0002.pt']
    (run,) = set(first.values())
    small_net().train(nn.Adam(0.01), epochs=3, final_epochs=1, checkpoint_every=1, resume=True)
    after = run_ids(tmp_path)
    assert 'net_final_net.pt' in after and 'net_checkpoint_0004.pt' in after
    assert set(after.values()) == {run}
    assert nn.load(tmp_path / 'net_final_net.pt').num_classes == 10    # still a net file


def test_the_same_net_trained_again_replaces_its_own_earlier_run(small_net, tmp_path):
    net = small_net()
    net.train(nn.Adam(0.01), epochs=3, checkpoint_every=1)
    net.train(nn.Adam(0.01), epochs=1, checkpoint_every=1)
    assert [os.path.basename(p) for p in list_checkpoints(net)] == ['net_checkpoint_0001.pt']
    assert len(set(run_ids(tmp_path).values())) == 1     # only the second run's files
    with pytest.raises(ConfigError, match='another training run'):
        small_net().train(nn.Adam(0.01), epochs=1)       # another net object is another run


class PlantForeignCheckpoint(nn.Callback):
    """Copies another run's checkpoint, numbered far ahead, into the folder mid-run."""

    def __init__(self, source, target):
        self.source, self.target = str(source), str(target)

    def on_epoch_end(self, net, logs):
        if logs['epoch'] == 1:
            with open(self.source, 'rb') as f, open(self.target, 'wb') as g:
                g.write(f.read())


def test_pruning_and_resume_consider_only_the_runs_own_checkpoints(small_net, tmp_path):
    small_net(output_dir=tmp_path / 'other').train(nn.Adam(0.01), epochs=1, checkpoint_every=1)
    foreign = tmp_path / 'net_checkpoint_0009.pt'
    plant = PlantForeignCheckpoint(tmp_path / 'other' / 'net_checkpoint_0001.pt', foreign)
    small_net().train(nn.Adam(0.01), epochs=4, checkpoint_every=1, keep_checkpoints=2,
                      callbacks=[plant])
    names = [os.path.basename(p) for p in list_checkpoints(small_net())]
    assert names == ['net_checkpoint_0003.pt', 'net_checkpoint_0004.pt', 'net_checkpoint_0009.pt']
    with pytest.raises(ConfigError, match=r'checkpoints of 2 runs .* resume=<path'):
        small_net().train(nn.Adam(0.01), epochs=5, resume=True)
    foreign.unlink()
    history = small_net().train(nn.Adam(0.01), epochs=5, resume=True)
    assert history['epoch'] == [1, 2, 3, 4, 5]


def write_lock(folder, name, pid, **fields):
    lock = folder / f'{name}.lock'
    lock.write_text(json.dumps({'pid': pid, 'host': socket.gethostname(), 'run': 'ab' * 16,
                                'process_start': _process_start(pid), **fields}))
    return lock


def test_a_lock_held_by_a_live_process_refuses_a_second_run(small_net, tmp_path):
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock = write_lock(tmp_path, 'net', sleeper.pid)
        with pytest.raises(ConfigError, match=rf'another process \(pid {sleeper.pid} .* '
                                              r'is training a net named .net.'):
            small_net().train(nn.Adam(0.01), epochs=1)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert os.listdir(tmp_path) == ['net.lock'] and lock.exists()   # nothing written


def test_a_stale_lock_is_taken_over_with_a_warning(small_net, tmp_path):
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    write_lock(tmp_path, 'net', gone.pid, process_start=None)
    with pytest.warns(UserWarning, match=rf'took over the stale lock .* of process {gone.pid}'):
        small_net().train(nn.Adam(0.01), epochs=1)
    assert not (tmp_path / 'net.lock').exists()                   # released at the end
    write_lock(tmp_path, 'reused', os.getpid(), process_start='another boot:1')  # pid reused
    with pytest.warns(UserWarning, match=f'took over the stale lock .* process {os.getpid()}'):
        small_net(name='reused').train(nn.Adam(0.01), epochs=1)
    assert not (tmp_path / 'reused.lock').exists()


def test_the_lock_is_released_however_train_ends(small_net, tmp_path):
    class Fail(nn.Callback):
        def on_epoch_end(self, net, logs):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        small_net().train(nn.Adam(0.01), epochs=2, callbacks=[Fail()])
    assert not (tmp_path / 'net.lock').exists()
    net = small_net(name='nested')

    class Nested(nn.Callback):
        def on_epoch_end(self, inner, logs):
            net.train(nn.Adam(0.01), epochs=1)

    with pytest.raises(ConfigError, match=r"this process is training a net named 'nested'"):
        net.train(nn.Adam(0.01), epochs=1, callbacks=[Nested()])
    assert not (tmp_path / 'nested.lock').exists()


def test_checkpoint_files_name_their_run(small_net, tmp_path):
    small_net().train(nn.Adam(0.01), epochs=1, checkpoint_every=1)
    state = torch.load(tmp_path / 'net_checkpoint_0001.pt', weights_only=True)
    assert set(state['run']) == {'id', 'started'}
    assert state['checks']['annealer'] == 'ConstantLearningRate'
    assert set(state['checks']['data']) == {'train', 'valid', 'test'}
