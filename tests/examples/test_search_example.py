"""examples/search.py runs: a small search on the digits logged to MLflow and TensorBoard,
its best three nets ensembled."""

import importlib.util
import os

import pytest

pytest.importorskip('optuna')
mlflow = pytest.importorskip('mlflow')
EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'examples', 'search.py')


@pytest.mark.slow
def test_the_search_example_runs(tmp_path, tracking_uri, capsys):
    spec = importlib.util.spec_from_file_location('search_example', EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    found = example.main(str(tmp_path / 'search'), n_trials=3, epochs=2,
                         tracking_uri=tracking_uri)
    out = capsys.readouterr().out
    assert sum(found['counts'].values()) == 3 and 'ensemble of the best' in out
    assert found['best_accuracy'] > 0.5 and found['ensemble_accuracy'] > 0.5
    assert len(found['members']) == min(3, found['counts'].get('COMPLETE', 0))
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name('digits-search').experiment_id])
    assert sorted(r.data.tags['optuna.trial'] for r in runs) == ['0', '1', '2']
    boards = sorted(os.listdir(tmp_path / 'search' / 'tensorboard'))
    assert boards == ['trial_0000', 'trial_0001', 'trial_0002']
