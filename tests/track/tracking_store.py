"""An MLflow SQLite tracking store for the tests, made once per session.

MLflow takes several seconds to create the tables of a new SQLite store (its
migrations); each test gets a copy of one store made at the start, at
``sqlite:///<its tmp_path>/mlflow.db``.
"""

import shutil

import pytest

mlflow = pytest.importorskip('mlflow')


@pytest.fixture(scope='session')
def mlflow_template(tmp_path_factory):
    """The path of an empty MLflow SQLite store with its tables made."""
    path = tmp_path_factory.mktemp('mlflow') / 'template.db'
    mlflow.MlflowClient(f'sqlite:///{path}').search_experiments()
    return path


@pytest.fixture
def tracking_uri(mlflow_template, tmp_path):
    """A fresh copy of the template store for one test, as a tracking URI."""
    path = tmp_path / 'mlflow.db'
    shutil.copyfile(mlflow_template, path)
    return f'sqlite:///{path}'


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


__all__ = ['mlflow_template', 'tracking_uri', 'runs_of', 'steps', 'history_series']
