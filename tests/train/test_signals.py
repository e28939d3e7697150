"""Signals save the run: SIGTERM and Ctrl-C finish the batch, write the interrupted
checkpoint, skip what remains and make train raise; resuming ends bit-identical.
Two processes on one name and folder: the second is refused.

Real processes run tests/train/resume_child.py (as test_kill_resume.py does); the
in-process tests send the signal to this process from a callback.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.errors import TrainingInterrupted
from pydnn2.train.checkpoints import list_checkpoints, run_of

sys.path.insert(0, os.path.dirname(__file__))
from resume_child import INTERRUPTED, REFUSED

CHILD = os.path.join(os.path.dirname(__file__), 'resume_child.py')
pytestmark = pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs POSIX signals')


def start_child(rule, folder, result, *flags):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, CHILD, rule, str(folder), str(result), *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_child(rule, folder, result, *flags):
    child = start_child(rule, folder, result, *flags)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    return out


def outcome(result):
    """The weights and history (without the seconds) a child wrote."""
    with open(f'{result}.json') as f:
        return torch.load(result), json.load(f)


def assert_same_outcome(a, b):
    (weights_a, history_a), (weights_b, history_b) = outcome(a), outcome(b)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert history_a == history_b


def signal_at(rule, folder, signum, epoch, batch):
    """Start a child, send ``signum`` when it reaches batch ``batch`` of epoch ``epoch``
    (it writes a beacon file there and waits); returns its exit code and what it printed."""
    beacon = folder.parent / f'{folder.name}.paused'
    child = start_child(rule, folder, folder.parent / 'unused.pt', '--checkpoint',
                        f'--pause={epoch}.{batch}:{beacon}')
    deadline = time.monotonic() + 240
    while not beacon.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f'the child never reached its pause:\n{child.communicate()[1]}')
        time.sleep(0.01)
    child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    return child.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize('rule, epoch, batch', [('momentum', 2, 4), ('adam', 3, 15)])
def test_sigterm_then_resume_is_bit_identical(rule, epoch, batch, tmp_path):
    run_child(rule, tmp_path / 'a', tmp_path / 'straight.pt')
    folder = tmp_path / 'b'
    code, out, err = signal_at(rule, folder, signal.SIGTERM, epoch, batch)
    assert code == INTERRUPTED, err
    path = out.strip()
    assert path.endswith('_interrupted.pt') and os.path.isfile(path)
    assert not (tmp_path / 'unused.pt').exists() and not (folder / 'kill.lock').exists()
    run_child(rule, folder, tmp_path / 'resumed.pt', '--checkpoint', '--resume')
    assert_same_outcome(tmp_path / 'straight.pt', tmp_path / 'resumed.pt')


@pytest.mark.slow
def test_ctrl_c_with_final_epochs_skips_them_and_resume_continues_the_main_phase(tmp_path):
    run_child('adam', tmp_path / 'a', tmp_path / 'straight.pt')
    folder = tmp_path / 'b'
    code, out, err = signal_at('adam', folder, signal.SIGINT, 2, 10)
    assert code == INTERRUPTED, err
    assert not (folder / 'kill_final_net.pt').exists()        # no final phase ran
    state = torch.load(out.strip(), weights_only=True)
    assert state['epoch_state']['phase'] == 'main' and not state['session']['main_done']
    run_child('adam', folder, tmp_path / 'resumed.pt', '--checkpoint', '--resume')
    assert outcome(tmp_path / 'resumed.pt')[1]['phase'] == ['main'] * 6 + ['final']
    assert_same_outcome(tmp_path / 'straight.pt', tmp_path / 'resumed.pt')


@pytest.mark.slow
def test_two_processes_on_one_name_and_folder_the_second_is_refused(tmp_path):
    run_child('sgd', tmp_path / 'a', tmp_path / 'straight.pt')
    folder = tmp_path / 'b'
    children = [start_child('sgd', folder, tmp_path / f'result{i}.pt', '--checkpoint', '--slow')
                for i in (0, 1)]
    done = [(child.returncode, out, err) for child in children
            for out, err in [child.communicate(timeout=300)]]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, REFUSED], done
    winner = [i for i, (code, _, _) in enumerate(done) if code == 0][0]
    refusal = done[1 - winner][1]
    assert "is training a net named 'kill'" in refusal and 'pid' in refusal
    assert_same_outcome(tmp_path / 'straight.pt', tmp_path / f'result{winner}.pt')
    assert not (tmp_path / f'result{1 - winner}.pt').exists()
    names = sorted(os.listdir(folder))
    assert names == ['kill_best_net.pt', 'kill_checkpoint_0005.pt', 'kill_checkpoint_0006.pt',
                     'kill_checkpoint_0007.pt', 'kill_final_net.pt']
    assert len({run_of(str(folder / name))['id'] for name in names}) == 1


class Send(nn.Callback):
    """Sends ``signum`` to this process after batch ``batch`` of epoch ``epoch``
    (``times`` times in a row)."""

    def __init__(self, signum, epoch, batch, times=1):
        self.signum, self.epoch, self.batch, self.times = signum, epoch, batch, times

    def on_minibatch_end(self, net, logs):
        if (logs['epoch'], logs['batch']) == (self.epoch, self.batch):
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def trained(net, **options):
    """Train 3 main epochs and 1 final; returns the net."""
    net.train(nn.Momentum(0.5, 0.9, 0.02), epochs=3, final_epochs=1, restore_best=False,
              **options)
    return net


def steps(digits_sets):
    return len(digits_sets[0][1]) // 32


@pytest.mark.parametrize('signum, epoch, batch, phase', [
    (signal.SIGTERM, 2, 7, 'main'),        # mid-epoch
    (signal.SIGINT, 3, None, 'after main'),  # after the main phase's last batch
    (signal.SIGTERM, 4, 3, 'final'),       # in the final phase
])
@pytest.mark.slow
def test_a_signal_anywhere_raises_and_the_resumed_run_is_bit_identical(
        signum, epoch, batch, phase, small_net, digits_sets, tmp_path):
    straight = trained(small_net(output_dir=tmp_path / 'straight'))
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    send = Send(signum, epoch, batch or steps(digits_sets))
    with pytest.raises(TrainingInterrupted) as info:
        trained(small_net(), callbacks=[send])
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous
    stopped = info.value
    assert stopped.signal == signal.Signals(signum).name
    assert stopped.checkpoint == list_checkpoints(small_net())[-1]
    copy = pickle.loads(pickle.dumps(stopped))                    # crosses processes whole
    assert (copy.checkpoint, copy.signal, str(copy)) == (stopped.checkpoint, stopped.signal,
                                                         str(stopped))
    assert not os.path.exists(tmp_path / 'net_final_net.pt')
    assert not os.path.exists(tmp_path / 'net.lock')
    state = torch.load(stopped.checkpoint, weights_only=True)
    saved = state['epoch_state']
    assert (saved['phase'] if saved else 'after main' * state['session']['main_done']) == phase
    resumed = trained(small_net(), resume=True)
    assert os.path.isfile(tmp_path / 'net_final_net.pt')
    for key, value in straight.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[key], value), key
    drop = {'seconds'}
    assert ({k: v for k, v in resumed.history.items() if k not in drop}
            == {k: v for k, v in straight.history.items() if k not in drop})


def test_a_second_signal_stops_at_once(small_net, tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        trained(small_net(), callbacks=[Send(signal.SIGTERM, 1, 3, times=2)])
    assert signal.getsignal(signal.SIGTERM) == previous
    assert net_files(tmp_path) == []           # nothing written: it stopped at once
    assert not os.path.exists(tmp_path / 'net.lock')


def net_files(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith('net'))
