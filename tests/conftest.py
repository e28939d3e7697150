"""Shared fixtures: a per-test seed, the digits sets, and a small-net factory."""

import random
import shutil

import numpy as np
import pytest
import torch

from pydnn2.data import load_digits
from pydnn2.net import NN
from pydnn2.preprocess import ArrayPreprocessor, split_training_data

# One thread: the nets here are tiny, and on the shared two-core test machine two
# spinning OpenMP threads per process slow training down several-fold under load.
torch.set_num_threads(1)

SEED = 1234


def pytest_configure(config):
    """Register the markers the tests use."""
    config.addinivalue_line('markers', 'slow: takes more than a few seconds (a subprocess, '
                                       'a torchrun launch, a real training run); '
                                       "deselect with -m 'not slow'")


@pytest.fixture(autouse=True)
def seed_everything():
    """Seed Python, numpy and torch before every test, so each one runs the same alone
    or in any order."""
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)


@pytest.fixture(autouse=True)
def fresh_working_folder(tmp_path_factory, monkeypatch):
    """Run every test in an empty working folder of its own: a net trained with the
    default ``output_dir=''`` writes there, never into the repository, and two tests
    (or two test runs at once) never share a run's files or its lock."""
    monkeypatch.chdir(tmp_path_factory.mktemp('cwd'))


@pytest.fixture(scope='session')
def digits_cached():
    """``load_digits()`` once per session; read it, never write to it (or use ``digits``)."""
    return load_digits()


@pytest.fixture
def digits(digits_cached):
    """``(images (1797, 1, 8, 8), classes, file_indices)``: fresh copies per test."""
    return tuple(np.array(a, copy=True) for a in digits_cached)


@pytest.fixture
def digits_sets(digits):
    """The digits split 60/20/20 with batch size 32 (the default fixed-seed shuffle)."""
    return split_training_data(digits, 32, 60, 20, 20)


def build_small(net):
    """A tiny conv net: conv 4x3x3 + 2x2 pool, batch norm, relu; dense 16; logistic."""
    net.add_convolution(4, (3, 3), (2, 2))      # (1, 8, 8) -> (4, 3, 3)
    net.add_hidden(16)                          # -> (16,)
    net.add_logistic()                          # -> (10,)


def make_small_net(sets, output_dir, build=None, pre=None, **kwargs):
    """``NN(pre, 'images', 10, 32, RandomState(0), verbose=False, output_dir=output_dir)``
    on the CPU.

    ``build(net)`` adds the layers (by default :func:`build_small`; ``build=False``
    adds none); ``pre`` replaces ``ArrayPreprocessor(sets)``; ``kwargs`` override
    NN's keyword arguments (``name``, ``device``, ``activation``, ...).
    """
    if pre is None:
        pre = ArrayPreprocessor(sets)
    options = dict(verbose=False, output_dir=str(output_dir), device='cpu')
    options.update(kwargs)
    net = NN(pre, 'images', 10, 32, np.random.RandomState(0), **options)
    if build is None:
        build_small(net)
    elif build:
        build(net)
    return net


@pytest.fixture(scope='session')
def net_maker():
    """:func:`make_small_net`, for fixtures of wider scope than ``small_net``."""
    return make_small_net


@pytest.fixture
def small_net(digits_sets, tmp_path):
    """Factory of small nets on the digits, writing to ``tmp_path``.

    ``small_net(build=None, sets=None, pre=None, output_dir=None, **kwargs)``: see
    :func:`make_small_net`; ``sets`` defaults to ``digits_sets``, ``output_dir`` to
    ``tmp_path``.
    """
    def make(build=None, sets=None, pre=None, output_dir=None, **kwargs):
        return make_small_net(digits_sets if sets is None else sets,
                              tmp_path if output_dir is None else output_dir, build, pre,
                              **kwargs)

    return make


@pytest.fixture(scope='session')
def mlflow_template(tmp_path_factory):
    """An empty MLflow SQLite tracking store, its tables made once per session (MLflow's
    migrations take several seconds); ``tracking_uri`` gives each test a copy."""
    mlflow = pytest.importorskip('mlflow')
    path = tmp_path_factory.mktemp('mlflow') / 'template.db'
    mlflow.MlflowClient(f'sqlite:///{path}').search_experiments()
    return path


@pytest.fixture
def tracking_uri(mlflow_template, tmp_path):
    """``sqlite:///<tmp_path>/mlflow.db``: a fresh copy of the template store."""
    path = tmp_path / 'mlflow.db'
    shutil.copyfile(mlflow_template, path)
    return f'sqlite:///{path}'
