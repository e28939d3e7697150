"""pydnn2 packages: a wheel and an sdist build from a copy of the tree, twine finds
their metadata fit for an index, and the wheel installs into a fresh virtual
environment where the demo runs on the installed package.

The fresh environment gets pydnn2 from the wheel alone. Its dependencies are
borrowed from the test environment (a path file naming a folder of links to
them, pydnn2 left out) rather than downloaded: torch alone is gigabytes, and
tests download nothing. pip still checks the wheel's requirements against
them.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile

import pytest

import pydnn2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SKIP = shutil.ignore_patterns('.venv', '.git', '_build', 'build', 'dist', '*.egg-info',
                              '__pycache__', '.pytest_cache', '.hypothesis', '.mypy_cache',
                              '.ruff_cache', 'out')
pytestmark = pytest.mark.slow


def run(command, **options):
    """Run a command; fail with its output if it fails."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          **options)
    assert done.returncode == 0, f'{command}\n{done.stdout}\n{done.stderr}'
    return done.stdout


@pytest.fixture(scope='module')
def dist(tmp_path_factory):
    """``(sdist, wheel)`` built (sdist first, the wheel from it) from a copy of the tree."""
    tree, out = tmp_path_factory.mktemp('tree') / 'pydnn2', tmp_path_factory.mktemp('dist')
    shutil.copytree(ROOT, tree, ignore=SKIP)
    run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', out, tree])
    names = sorted(os.listdir(out))
    version = pydnn2.__version__
    assert names == [f'pydnn2-{version}-py3-none-any.whl', f'pydnn2-{version}.tar.gz']
    return out / names[1], out / names[0]


def test_twine_finds_the_metadata_fit_for_an_index(dist):
    output = run([sys.executable, '-m', 'twine', 'check', '--strict', *dist])
    assert output.count('PASSED') == 2


def test_the_wheel_holds_every_module_the_license_and_the_metadata(dist):
    sources = {os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, '/')
               for folder, _, names in os.walk(os.path.join(ROOT, 'pydnn2'))
               for name in names if name.endswith('.py')}
    with zipfile.ZipFile(dist[1]) as wheel:
        names = set(wheel.namelist())
        info = f'pydnn2-{pydnn2.__version__}.dist-info'
        metadata = wheel.read(f'{info}/METADATA').decode()
    assert sources <= names and len(sources) > 60
    assert 'pydnn2/py.typed' in names           # its annotations reach users' type checkers
    assert f'{info}/licenses/LICENSE' in names
    assert 'License-Expression: MIT' in metadata
    for requirement in ('torch>=2.2', 'numpy>=1.22', 'pillow>=9.0', 'scikit-learn>=1.6'):
        assert f'Requires-Dist: {requirement}' in metadata
    assert not any(name.startswith(('tests/', 'docs/')) for name in names)


def test_the_sdist_holds_what_a_build_needs(dist):
    with tarfile.open(dist[0]) as sdist:
        names = {name.split('/', 1)[1] for name in sdist.getnames() if '/' in name}
    assert {'pyproject.toml', 'README.rst', 'LICENSE', 'pydnn2/version.py', 'pydnn2/py.typed',
            'pydnn2/model/layers/core.py'} <= names


def borrowed_dependencies(folder):
    """A folder of links to every package in this environment but pydnn2."""
    os.makedirs(folder)
    site = sysconfig.get_paths()['purelib']
    for name in os.listdir(site):
        if not name.lower().startswith(('pydnn2', '__editable__', '_pydnn2')):
            os.symlink(os.path.join(site, name), os.path.join(folder, name))
    return folder


def test_the_wheel_installs_in_a_fresh_environment_and_runs_the_demo(dist, tmp_path):
    env_dir = tmp_path / 'env'
    venv.create(env_dir, with_pip=True)
    python = env_dir / ('Scripts' if os.name == 'nt' else 'bin') / 'python'
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'])
    deps = borrowed_dependencies(tmp_path / 'deps')
    with open(os.path.join(site.strip(), 'borrowed.pth'), 'w') as f:
        f.write(f'{deps}\n')
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('PYTHON', 'PIP_'))}
    # ensurepip's own setuptools (old on some Pythons) would hide the borrowed one
    run([python, '-m', 'pip', 'uninstall', '-y', 'setuptools'], env=clean)
    run([python, '-m', 'pip', 'install', '--no-index', '--no-cache-dir', dist[1]], env=clean)
    run([python, '-m', 'pip', 'check'], env=clean)
    work = tmp_path / 'work'
    work.mkdir()
    shutil.copy(os.path.join(ROOT, 'examples', 'digits.py'), work)
    demo = ('import pydnn2, digits; print(pydnn2.__file__); '
            'print("accuracy", digits.main(output_dir="out", epochs=3))')
    output = run([python, '-I', '-c', f'import sys; sys.path.insert(0, "."); {demo}'],
                 cwd=work, env=dict(clean, OMP_NUM_THREADS='1'))
    where = output.splitlines()[0]
    assert where.startswith(site.strip()) and 'site-packages' in where   # the wheel's copy
    assert 'the loaded net predicts the same: True' in output
    assert float(output.split('accuracy')[-1]) > 0.5
    assert os.path.isfile(work / 'out' / 'digits.pt')
