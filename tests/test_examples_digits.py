"""The demo (examples/digits.py) runs end to end: train, predict, confusion, save, load."""

import importlib.util
import os

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, 'examples', 'digits.py')


@pytest.mark.slow
def test_the_digits_demo_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('digits_example', EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    accuracy = example.main(str(tmp_path), epochs=3)
    out = capsys.readouterr().out
    assert accuracy > 0.8
    assert 'the loaded net predicts the same: True' in out
    assert 'confusion matrix' in out and 'estimated time per epoch' in out
    assert os.path.isfile(tmp_path / 'digits.pt')
    assert os.path.isfile(tmp_path / 'digits_best_net.pt')
