"""Checkpoints written by main before the training package was rebuilt still resume.

tests/data/main_checkpoints/ holds a periodic and a mid-epoch (interrupted)
checkpoint of a digits MLP, written by main's code at commit 5f25a12 with the
script beside them, and the history of the same run trained straight through
there. Resuming either with today's code must keep main's figures of the epochs
before the checkpoint exactly and end where main's straight run ended; on a CPU
that computes main's first epochs to the bit, exactly where today's straight run
ends (another CPU sums in another order, so the checkpoint's weights are not
the ones it would have reached: there, up to rounding).
"""

import json
import os
import shutil
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, os.pardir, 'data', 'main_checkpoints')
sys.path.insert(0, FIXTURES)
import write_main_checkpoints as written  # noqa: E402

DONE = 2          # the epochs both checkpoints hold finished
FILES = {'periodic': 'mlp_checkpoint_0002.pt',
         'interrupted': 'mlp_checkpoint_0002_interrupted.pt'}


@pytest.fixture(scope='module')
def on_main():
    """What main's straight run gave."""
    with open(os.path.join(FIXTURES, 'straight.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def today(tmp_path_factory):
    """Today's straight run: ``(history, weights, its CountBatches)``."""
    folder = tmp_path_factory.mktemp('straight')
    net = written.build(folder)
    options = written.options(folder)
    history = net.train(written.rule(), **options)
    return history, net.module.state_dict(), options['callbacks'][0]


def resume(kind, folder):
    """Copy main's checkpoint of ``kind`` into ``folder`` and resume it to the end."""
    path = os.path.join(str(folder), FILES[kind])
    shutil.copyfile(os.path.join(FIXTURES, kind, FILES[kind]), path)
    net = written.build(folder)
    options = written.options(folder)
    history = net.train(written.rule(), resume=path, **options)
    return net, history, options['callbacks'][0]


def close(values, expected):
    """Equal lists of figures, up to rounding (another CPU may sum in another order)."""
    return len(values) == len(expected) and all(
        a == b if a is None or b is None else a == pytest.approx(b, rel=1e-5, abs=1e-7)
        for a, b in zip(values, expected))


@pytest.mark.parametrize('kind', sorted(FILES))
def test_a_checkpoint_of_main_resumes_to_the_end_of_the_straight_run(kind, tmp_path, on_main,
                                                                    today):
    net, history, counter = resume(kind, tmp_path)
    plain = written.plain_history(history)
    assert plain['epoch'] == on_main['history']['epoch']
    assert plain['phase'] == on_main['history']['phase']
    for key in ('train_loss', 'valid_loss', 'test_loss', 'train_error', 'valid_error'):
        assert close(plain[key], on_main['history'][key]), key
    weight_sum = float(sum(v.double().sum() for v in net.module.state_dict().values()))
    assert weight_sum == pytest.approx(on_main['weight_sum'], rel=1e-5)
    # the epochs before the checkpoint are main's, read from its file: exactly its figures
    for key, values in plain.items():
        assert values[:DONE] == on_main['history'][key][:DONE], key
    straight, weights, straight_counter = today
    straight = written.plain_history(straight)
    if all(values[:DONE] == on_main['history'][key][:DONE] for key, values in straight.items()):
        # this CPU computes main's first epochs to the bit: the resumed run ends bit for bit
        assert plain == straight
        for key, value in net.module.state_dict().items():
            assert torch.equal(value, weights[key]), key
    else:        # another CPU (summing in another order): the checkpoint's weights differ
        for key in ('train_loss', 'valid_loss', 'test_loss'):
            assert close(plain[key], straight[key]), key
        for key, value in net.module.state_dict().items():
            assert torch.allclose(value, weights[key], rtol=1e-4, atol=1e-6), key
    # the user's callback kept what it had collected before the checkpoint
    assert counter.batches == straight_counter.batches == on_main['batches']
    assert counter.losses[:DONE] == on_main['losses'][:DONE]
    assert counter.losses == pytest.approx(on_main['losses'], abs=2e-6)
    assert straight_counter.losses == pytest.approx(on_main['losses'], abs=2e-6)
    rows = open(tmp_path / 'history.csv').read().splitlines()
    assert len(rows) == 1 + len(on_main['history']['epoch'])
