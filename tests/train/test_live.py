"""Live learning curves: one display, updated in place every epoch; a file when asked,
its path checked before training."""

import os

import numpy as np
import pytest

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.train import live
from pydnn2.train.config import TrainConfig
from pydnn2.train.live import LiveCurves, with_live_curves

IPython_display = pytest.importorskip('IPython.display')
Image = pytest.importorskip('PIL.Image')


@pytest.fixture(scope='module')
def sets():
    return preprocess.split_training_data(data.load_digits(), 64, 60, 20, 20,
                                          rng=np.random.RandomState(3))


def build(sets, tmp_path):
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 64,
                np.random.RandomState(0), output_dir=str(tmp_path), verbose=False,
                device='cpu')
    net.add_hidden(16)
    net.add_logistic()
    return net


class FakeHandle:
    """Records what an IPython display handle is asked to do."""

    def __init__(self, fig):
        self.shown, self.updates = fig, []

    def update(self, fig):
        self.updates.append((fig, len(fig.axes[0].lines)))


@pytest.fixture
def notebook(monkeypatch):
    """Pretend to run in a notebook; returns the display handles made."""
    handles = []

    def display(fig, display_id=None):
        assert display_id is True
        handles.append(FakeHandle(fig))
        return handles[-1]

    monkeypatch.setattr(live, 'in_notebook', lambda: True)
    monkeypatch.setattr(IPython_display, 'display', display)
    return handles


def test_in_a_notebook_one_figure_is_displayed_once_and_updated_every_epoch(
        sets, tmp_path, notebook):
    net = build(sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=3, final_epochs=1, plot=True)
    assert len(notebook) == 1                             # displayed once, when training began
    handle = notebook[0]
    assert len(handle.updates) == 4                       # then updated after each epoch
    assert all(fig is handle.shown for fig, _ in handle.updates)   # the same figure
    assert handle.shown.axes[0].get_ylabel() == 'loss'
    assert handle.shown.get_suptitle() == 'net: 4 epochs'
    assert [lines for _, lines in handle.updates][-1] >= 2          # train and valid curves
    assert not list(tmp_path.glob('*.png'))               # no path: no file


def test_a_second_run_gets_a_display_of_its_own(sets, tmp_path, notebook):
    net = build(sets, tmp_path)
    curves = LiveCurves()
    net.train(nn.Adam(0.01), epochs=2, callbacks=[curves], plot=True)   # one LiveCurves
    net.train(nn.Adam(0.01), epochs=1, callbacks=[curves])
    assert [len(h.updates) for h in notebook] == [2, 1]


@pytest.mark.slow
def test_outside_a_notebook_nothing_is_shown_and_a_path_gets_the_picture(
        sets, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(IPython_display, 'display', lambda *a, **k: shown.append(a))
    net = build(sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=2, plot=True)          # nothing to show it on
    path = tmp_path / 'curves' / 'live.png'
    net.train(nn.Adam(0.01), epochs=2, plot=str(path))
    assert not shown
    assert path.stat().st_size > 10_000
    pixels = np.asarray(Image.open(path).convert('L'), np.float64)
    assert pixels.shape[1] > 800 and pixels.std() > 10
    assert not [p for p in path.parent.iterdir() if p.name != 'live.png']   # no temporary left


@pytest.mark.slow
def test_a_path_and_a_notebook_together(sets, tmp_path, notebook):
    net = build(sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=2, callbacks=[LiveCurves(tmp_path / 'c.svg')])
    assert len(notebook) == 1 and len(notebook[0].updates) == 2
    assert (tmp_path / 'c.svg').read_text().lstrip().startswith('<?xml')


def test_the_plot_option_is_checked():
    assert with_live_curves(TrainConfig()).callbacks is None
    assert TrainConfig.from_options(plot='x.png').plot == 'x.png'
    with pytest.raises(ConfigError, match='plot must be'):
        TrainConfig.from_options(plot=3)


class Epochs(nn.Callback):
    """Counts the epochs that began."""

    def __init__(self):
        self.begun = 0

    def on_epoch_begin(self, net, logs):
        self.begun += 1


@pytest.mark.parametrize('where, words', [
    ('curves.xyz', 'matplotlib cannot write a .xyz file; use one of '),
    ('.', 'is a folder; give the path of a file'),
    ('blocker/curves.png', 'no file can be created in'),
])
def test_a_plot_path_that_cannot_be_written_is_refused_before_training(sets, tmp_path, where,
                                                                       words):
    (tmp_path / 'blocker').write_text('a file, not a folder')
    path = str(tmp_path / where)
    epochs, net = Epochs(), build(sets, tmp_path / 'out')
    with pytest.raises(ConfigError) as info:
        net.train(nn.Adam(0.01), epochs=1, plot=path, callbacks=[epochs])
    assert words in str(info.value) and repr(path) in str(info.value)
    assert where != 'curves.xyz' or ('.png' in str(info.value) and '.svg' in str(info.value))
    assert epochs.begun == 0 and not (tmp_path / 'out').exists()    # nothing ran or was written
    with pytest.raises(ConfigError, match=words.split(';')[0].replace('.', r'\.')):
        LiveCurves(path)


@pytest.mark.skipif(not hasattr(os, 'geteuid') or os.geteuid() == 0,
                    reason='root writes into read-only folders')
def test_a_plot_path_in_a_read_only_folder_is_refused_before_training(sets, tmp_path):
    (tmp_path / 'ro').mkdir()
    os.chmod(tmp_path / 'ro', 0o555)
    try:
        with pytest.raises(ConfigError, match='no file can be created in'):
            build(sets, tmp_path / 'out').train(nn.Adam(0.01), epochs=1,
                                                plot=str(tmp_path / 'ro' / 'c.png'))
    finally:
        os.chmod(tmp_path / 'ro', 0o755)


def test_a_plot_path_in_folders_still_to_be_made_is_accepted(sets, tmp_path):
    path = tmp_path / 'a' / 'b' / 'curves.pdf'
    build(sets, tmp_path).train(nn.Adam(0.01), epochs=1, plot=str(path))
    assert path.read_bytes().startswith(b'%PDF')
