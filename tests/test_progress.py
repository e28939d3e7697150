"""Progress output: a bar in a terminal, one line (or a widget) in a notebook,
nothing anywhere else."""

import io
import sys
import types

import pytest
from tqdm import std

from pydnn2 import neuralnet as nn, progress
from pydnn2.data.reader import parallel_map


class Terminal(io.StringIO):
    """What a terminal's stderr looks like to tqdm."""

    def isatty(self):
        return True


class FakeHandle:
    """An IPython display handle that remembers what it showed."""

    def __init__(self, shown):
        self.shown = shown

    def update(self, data, raw=False):
        assert raw
        self.shown.append(data['text/plain'])


@pytest.fixture
def notebook(monkeypatch):
    """A notebook without ipywidgets; returns what its one output line showed."""
    import IPython.display
    shown, handles = [], []

    def display(data, raw=False, display_id=False):
        assert raw and display_id
        shown.append(data['text/plain'])
        handles.append(FakeHandle(shown))
        return handles[-1]

    monkeypatch.setattr(progress, 'in_notebook', lambda: True)
    monkeypatch.setattr(progress, 'has_widgets', lambda: False)
    monkeypatch.setattr(IPython.display, 'display', display)
    return types.SimpleNamespace(shown=shown, handles=handles)


def run(bar, steps=5):
    for _ in range(steps):
        bar.update()
    bar.close()


def test_output_that_is_neither_terminal_nor_notebook_gets_nothing(capsys, monkeypatch):
    monkeypatch.setattr(progress, 'in_notebook', lambda: False)
    assert progress.where() is None and progress.where(io.StringIO()) is None
    run(progress.progress_bar(5, 'steps', leave=True))
    parallel_map(str, range(600), desc='reading', progress=True)
    assert capsys.readouterr() == ('', '')


def test_a_terminal_gets_tqdms_bar(monkeypatch):
    monkeypatch.setattr(progress, 'in_notebook', lambda: False)
    terminal = Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    assert progress.where() == progress.TERMINAL
    bar = progress.progress_bar(5, 'steps', leave=True)
    assert type(bar) is std.tqdm and not bar.disable
    run(bar)
    assert 'steps: 100%' in terminal.getvalue() and '5/5' in terminal.getvalue()
    parallel_map(str, range(20), desc='reading', progress=True, workers=1)
    assert '20/20' in terminal.getvalue()
    before = terminal.getvalue()
    run(progress.progress_bar(5, 'hidden', enabled=False))
    assert terminal.getvalue() == before


def test_a_notebook_without_widgets_gets_one_line_updated_in_place(notebook, capsys):
    bar = progress.progress_bar(50, 'epoch 1', mininterval=0)
    assert isinstance(bar, progress.NotebookLine)
    run(bar, 50)
    assert len(notebook.handles) == 1                  # one output, updated in place
    assert any('epoch 1' in s and '50/50' in s for s in notebook.shown)
    assert notebook.shown[-1] == ''                    # cleared: leave=False
    assert len(notebook.shown) > 2
    assert capsys.readouterr() == ('', '')             # nothing on stdout or stderr


def test_a_notebook_bar_is_rate_limited_and_can_stay(notebook):
    run(progress.progress_bar(10000, 'reading', leave=True), 10000)
    assert len(notebook.handles) == 1 and len(notebook.shown) < 20
    assert '10000/10000' in notebook.shown[-1]


def test_a_notebook_with_widgets_gets_tqdm_notebook(monkeypatch):
    import tqdm.notebook
    made = []

    class Widget:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(progress, 'in_notebook', lambda: True)
    monkeypatch.setattr(progress, 'has_widgets', lambda: True)
    monkeypatch.setattr(tqdm.notebook, 'tqdm', Widget)
    assert isinstance(progress.progress_bar(7, 'epoch 2', initial=3), Widget)
    assert made == [{'total': 7, 'desc': 'epoch 2', 'leave': False, 'initial': 3}]


def test_a_kernel_is_a_notebook_and_a_terminal_ipython_is_not(monkeypatch):
    shell = types.SimpleNamespace(config={})
    fake = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, 'IPython', fake)
    assert not progress.in_notebook()
    shell.config = {'IPKernelApp': {}}
    assert progress.in_notebook()
    monkeypatch.setattr(shell, 'config', {})
    shell.kernel = object()
    assert progress.in_notebook() and progress.where(Terminal()) == progress.NOTEBOOK
    fake.get_ipython = lambda: None
    assert not progress.in_notebook()
    monkeypatch.delitem(sys.modules, 'IPython')
    assert not progress.in_notebook()


def test_training_asks_the_factory_for_its_bar_and_writes_the_table(small_net, monkeypatch,
                                                                     capsys):
    asked = []
    factory = progress.progress_bar

    def spy(*args, **kwargs):
        asked.append((args, kwargs))
        return factory(*args, **kwargs)

    monkeypatch.setattr(progress, 'progress_bar', spy)
    small_net().train(nn.Adam(0.01), epochs=2, verbose=True, progress=True)
    assert [a for a, _ in asked] == [(34, 'epoch 1', True), (34, 'epoch 2', True)]
    out, err = capsys.readouterr()
    assert err == '' and out.splitlines()[0].split()[:2] == ['epoch', 'phase']
    assert [line.split()[:2] for line in out.splitlines()[1:3]] == [['1', 'main'],
                                                                   ['2', 'main']]
