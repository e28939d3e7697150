"""examples/quickstart.ipynb runs in a real Jupyter kernel and shows what it says:
the layer table as HTML, a warning for the re-run builder cell, live learning
curves updated in one place, pictures that are not blank, a test accuracy of at
least 0.9, and a saved net that predicts the same once loaded."""

import base64
import io
import json
import os
import re
import sys

import numpy as np
import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')
pytest.importorskip('ipykernel')
Image = pytest.importorskip('PIL.Image')

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'examples',
                        'quickstart.ipynb')


def python3_kernel_here(folder):
    """A 'python3' kernel spec that runs this interpreter, found before any other
    (JUPYTER_PATH comes first), so the notebook runs with the venv's pydnn2."""
    spec = folder / 'kernels' / 'python3'
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'Python 3 (pydnn2 tests)', 'language': 'python'}))
    return str(folder)


@pytest.fixture(scope='module')
def executed(tmp_path_factory):
    """The notebook, run once in a fresh kernel in a temporary folder (its time is not a
    test's business: an idle 2-core CPU runs it in about 16 s)."""
    work, jupyter = tmp_path_factory.mktemp('work'), tmp_path_factory.mktemp('jupyter')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('JUPYTER_PATH', python3_kernel_here(jupyter))
        patch.setenv('PYDEVD_DISABLE_FILE_VALIDATION', '1')
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                                resources={'metadata': {'path': str(work)}}).execute()
    return notebook, work


def outputs(notebook):
    """``(cell source, output)`` for every output of every code cell."""
    return [(cell.source, out) for cell in notebook.cells if cell.cell_type == 'code'
            for out in cell.outputs]


def text_of(cell_source, notebook, name='stdout'):
    """The text a cell (found by its source) wrote to ``name``."""
    return ''.join(out.get('text', '') for source, out in outputs(notebook)
                   if source == cell_source and out.output_type == 'stream'
                   and out.name == name)


def pictures(notebook):
    """``(cell source, Pillow image)`` of every PNG the notebook shows."""
    return [(source, Image.open(io.BytesIO(base64.b64decode(out.data['image/png']))))
            for source, out in outputs(notebook) if 'image/png' in out.get('data', {})]


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == 'code']
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_it_runs_without_errors_in_the_venv(executed):
    notebook, work = executed
    errors = [(s, out.ename, out.evalue) for s, out in outputs(notebook)
              if out.output_type == 'error']
    assert not errors
    first = text_of(notebook.cells[1].source, notebook)
    assert f'python: {sys.executable}\n' in first          # the kernel ran this venv's python
    assert (work / 'out' / 'digits.pt').is_file()            # it ran in the temporary folder


@pytest.mark.slow
def test_the_rerun_cell_warns_and_undo_takes_the_duplicate_back(executed):
    notebook, _ = executed
    sources = [c.source for c in notebook.cells if c.cell_type == 'code']
    rerun = [s for s in sources if sources.count(s) == 2]
    assert rerun, 'expected a builder cell that is run twice'
    assert 'RerunWarning' in text_of(rerun[0], notebook, 'stderr')
    others = [(s, out.text) for s, out in outputs(notebook) if out.output_type == 'stream'
              and out.name == 'stderr' and s != rerun[0]]
    assert not others, 'no other cell warns'
    undone = [out for s, out in outputs(notebook) if s.strip() == 'net.undo()']
    assert undone and 'add_hidden' in undone[0].data['text/plain']


@pytest.mark.slow
def test_the_net_shows_its_layer_table_as_html(executed):
    notebook, _ = executed
    shown = [out.data for s, out in outputs(notebook)
             if s.strip() == 'net' and 'text/html' in out.get('data', {})]
    assert shown and '<table' in shown[0]['text/html']
    for call in ('add_convolution', 'add_hidden', 'add_dropout', 'add_logistic'):
        assert call in shown[0]['text/html']
    # two convolutions and, after the undo, one hidden layer (each: weights, norm, relu)
    plain = shown[0]['text/plain']
    assert 2 * plain.count('add_hidden') == plain.count('add_convolution') > 0
    sizes = [out for s, out in outputs(notebook) if 'net_size' in s]
    assert sizes and '<table' in sizes[0].data['text/html']


@pytest.mark.slow
def test_the_pictures_are_there_and_not_blank(executed):
    notebook, _ = executed
    shown = pictures(notebook)
    assert len(shown) >= 4
    for source, image in shown:
        pixels = np.asarray(image.convert('L'), np.float64)
        assert image.width >= 300 and image.height >= 250, source
        assert pixels.std() > 10, f'a blank picture from {source!r}'
    live = [s for s, _ in shown if 'plot=True' in s and 'train' in s]
    assert len(live) == 1, 'the live curves are one display, updated in place'
    assert any('plot_confusion' in s for s, _ in shown)
    assert any('plot_mistakes' in s for s, _ in shown)
    assert any('lr_find' in s for s, _ in shown)


@pytest.mark.slow
def test_the_net_learned_and_reloads(executed):
    notebook, _ = executed
    text = ''.join(out.get('text', '') for _, out in outputs(notebook))
    accuracy = re.search(r'test accuracy: (\d\.\d+)', text)
    assert accuracy and float(accuracy.group(1)) >= 0.9
    assert 'predictions equal: True' in text
    assert re.search(r'best valid loss \d\.\d+; best net saved', text)
