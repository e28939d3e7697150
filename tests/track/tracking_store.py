"""Reading an MLflow store back in the tests (the store itself: the ``tracking_uri``
fixture of tests/conftest.py)."""

import pytest

mlflow = pytest.importorskip('mlflow')


def runs_of(uri, experiment):
    """The MLflow runs of ``experiment`` in the store at ``uri``."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def steps(client, run_id, key):
    """The ``(step, value)`` pairs MLflow holds for ``key``, by step."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def history_series(history, key):
    """``(epoch, value)`` of every epoch whose ``key`` is a number."""
    return [(e, v) for e, v in zip(history['epoch'], history[key]) if v is not None]


__all__ = ['runs_of', 'steps', 'history_series']
