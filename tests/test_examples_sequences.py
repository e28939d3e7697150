"""examples/sequences.py reaches its stated accuracies (the full example, as shipped)."""

import importlib.util
import os

import pytest


@pytest.fixture(scope='module')
def example():
    path = os.path.join(os.path.dirname(__file__), os.pardir, 'examples', 'sequences.py')
    spec = importlib.util.spec_from_file_location('sequences_example', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_lstm_reads_digits_row_by_row_to_at_least_95_percent(example, tmp_path):
    assert example.digits_as_sequences(output_dir=str(tmp_path), verbose=False) >= 0.95


@pytest.mark.slow
def test_lookup_table_lstm_and_sum_spot_a_token_pattern(example, tmp_path):
    assert example.spot_the_pattern(output_dir=str(tmp_path), verbose=False) >= 0.95


def test_generated_token_sequences_are_balanced_and_labelled_by_the_pattern(example):
    tokens, classes = example.make_token_sequences(200)
    assert tokens.dtype.kind == 'i' and tokens.shape == (200, 20) and classes.mean() == 0.5
    assert all(example.has_pattern(row) == bool(c) for row, c in zip(tokens, classes))
