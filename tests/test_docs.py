"""The documentation holds: every Python example in the README and on the site runs
as written, every public name has an entry in the API reference, and no docstring
section reads prose as parameters."""

import glob
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import pydnn2

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
DOCS = os.path.join(ROOT, 'docs')
BUILT = os.path.join(DOCS, '_build', 'html')
PAGES = [os.path.join(ROOT, 'README.rst')] + sorted(
    glob.glob(os.path.join(DOCS, '**', '*.rst'), recursive=True))
PACKAGES = ['pydnn2', 'pydnn2.neuralnet'] + sorted(
    m.name for m in pkgutil.walk_packages(pydnn2.__path__, 'pydnn2.') if m.ispkg)


def python_blocks():
    """``[(page, index, code)]`` of every ``.. code-block:: python`` on the pages."""
    found = []
    for page in PAGES:
        text = open(page, encoding='utf-8').read()
        blocks = re.findall(r'\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)', text)
        found += [(os.path.relpath(page, ROOT), i, textwrap.dedent(b))
                  for i, b in enumerate(blocks)]
    return found


BLOCKS = python_blocks()


def test_every_page_with_code_is_found_and_every_block_compiles():
    pages = {page for page, _, _ in BLOCKS}
    assert {'README.rst', 'docs/getting-started.rst', 'docs/guide/building.rst',
            'docs/guide/images.rst', 'docs/guide/distributed.rst'} <= pages
    for page, index, code in BLOCKS:
        compile(code, f'{page} block {index}', 'exec')


@pytest.mark.slow
@pytest.mark.parametrize('page, index, code', BLOCKS, ids=[f'{p}-{i}' for p, i, _ in BLOCKS])
def test_the_example_runs(page, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = {'__name__': '__main__'}
    exec(compile(code, f'{page} block {index}', 'exec'), ns)
    if 'test_mistakes' in ns:                # the first net, trained for real
        assert np.mean(ns['classes'] == ns['pre'].get_raw_y()[2]) > 0.9
        assert os.path.isfile(tmp_path / 'out' / 'digits.pt')
        assert os.path.isfile(tmp_path / 'out' / 'digits_best_net.pt')
    if 'truth' in ns:                        # the image-folder workflow
        right = [c == ns['truth'][name] for name, c in zip(ns['names'], ns['classes'])]
        assert len(right) == 100 and np.mean(right) > 0.5
        assert os.path.isfile(tmp_path / 'net_best_net.pt')


def inventory(path):
    """The entries of a Sphinx ``objects.inv``: ``{name: role}`` of the Python domain."""
    with open(path, 'rb') as f:
        for _ in range(4):                   # the header lines
            f.readline()
        lines = zlib.decompress(f.read()).decode('utf-8').splitlines()
    entries = {}
    for line in lines:
        name, role = re.match(r'(\S+)\s+(\S+)', line).groups()
        if role.startswith('py:'):
            entries[name] = role
    return entries


def newest_source():
    """The newest modification time among the files the documentation is built from."""
    paths = glob.glob(os.path.join(DOCS, '**', '*'), recursive=True) + glob.glob(
        os.path.join(ROOT, 'pydnn2', '**', '*.py'), recursive=True)
    return max(os.path.getmtime(p) for p in paths if '_build' not in p)


@pytest.fixture(scope='module')
def entries(tmp_path_factory):
    """The API entries of the built site: ``python3 dev.py docs``'s build when it is
    newer than every source, else a fresh build (warnings are errors)."""
    built = os.path.join(BUILT, 'objects.inv')
    if not (os.path.exists(built) and os.path.getmtime(built) > newest_source()):
        out = str(tmp_path_factory.mktemp('html'))
        done = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-E',
                               '-q', '-b', 'html', DOCS, out], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        built = os.path.join(out, 'objects.inv')
    return inventory(built)


def reach(name):
    """The object a documented full name names."""
    parts = name.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(name)


@pytest.mark.slow
def test_every_public_name_has_an_api_entry(entries):
    documented = {}
    for name in entries:
        try:
            documented.setdefault(id(reach(name)), []).append(name)
        except (LookupError, AttributeError):
            pass
    missing = [f'{package}.{name}' for package in PACKAGES
               for name in importlib.import_module(package).__all__
               if id(getattr(importlib.import_module(package), name)) not in documented]
    assert len(PACKAGES) >= 8 and len(entries) > 500
    assert missing == [], f'public names without an API entry: {missing}'


@pytest.mark.slow
def test_the_api_documents_the_extension_points_and_the_deprecated_module(entries):
    for name in ('pydnn2.net.NN.train', 'pydnn2.model.layers.base.LayerSpec.output_shape',
                 'pydnn2.preprocess.base.Preprocessor', 'pydnn2.train.callbacks.Callback',
                 'pydnn2.train.rules.LearningRule', 'pydnn2.evaluate.metrics.Metric._accumulate',
                 'pydnn2.callbacks'):
        assert name in entries, name
    assert entries['pydnn2.errors.DataError'] == 'py:exception'


def numpy_sections(obj):
    """The names napoleon's numpydoc parsing gives to ``obj``'s parameters and raises."""
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import NumpyDocstring
    text = str(NumpyDocstring(inspect.getdoc(obj) or '', Config(napoleon_use_param=True)))
    return re.findall(r'^:(?:param|raises)\s*([^:]*):', text, re.M)


def public_objects():
    """Every public function, class and method defined in pydnn2."""
    for info in pkgutil.walk_packages(pydnn2.__path__, 'pydnn2.'):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith('_') or getattr(obj, '__module__', None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f'{info.name}.{name}', obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith('_'):
                        yield f'{info.name}.{name}.{attr}', member


def test_no_docstring_section_reads_prose_as_a_parameter():
    wrong = [(name, found) for name, obj in public_objects()
             for found in numpy_sections(obj) if re.search(r'\s', found.strip())]
    assert wrong == [], f'text after a Parameters section (give it a heading): {wrong[:5]}'


def test_the_prose_check_catches_a_paragraph_after_the_parameters():
    def sample(x):
        """Do it.

        Parameters
        ----------
        x : int
            A number.

        A paragraph here, by mistake.
        """
    assert any(' ' in found for found in numpy_sections(sample))
