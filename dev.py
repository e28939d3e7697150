#!/usr/bin/env python3
"""Set up and run pydnn2 on a fresh machine: ``python3 dev.py demo|test|docs|bench``.

Creates (or reuses) a virtual environment in ``.venv``, installs pydnn2 and
what it needs there (pinned by ``constraints.txt``), then runs the demo, the
checks and tests, the documentation build or the benchmarks. Reinstalls only
when pyproject.toml or the constraints change.

``python3 dev.py test`` runs ruff, then the type check (mypy), then the
documentation build (warnings are errors), then pytest, and stops at the first
that fails. ``python3 dev.py test --fast`` runs ruff, mypy and the tests not
marked ``slow`` (no documentation build): the edit-test loop. Further arguments
go to pytest (``python3 dev.py test tests/test_api.py -k save``).
"""

import hashlib
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, '.venv')
BIN = os.path.join(VENV, 'Scripts' if os.name == 'nt' else 'bin')
PYTHON = os.path.join(BIN, 'python')
STAMP = os.path.join(VENV, '.pydnn2-installed')
DOCS_OUT = os.path.join('docs', '_build', 'html')

LINT = [PYTHON, '-m', 'ruff', 'check', '.']
TYPECHECK = [PYTHON, '-m', 'mypy']          # its settings: pyproject.toml's [tool.mypy]
# -E: read every page afresh, so that -W sees every warning, not only the new ones.
DOCS = [PYTHON, '-m', 'sphinx', '-W', '--keep-going', '-E', '-q', '-b', 'html', 'docs',
        DOCS_OUT]
PYTEST = [PYTHON, '-m', 'pytest', '-q']
# The full suite in two pytest-xdist workers: most tests run one torch thread
# (tests/conftest.py), so one process leaves the second core of CI idle.
XDIST = ['-n', '2', '--dist', 'worksteal']
EXTRAS = {'demo': '', 'test': '[test]', 'docs': '[docs]', 'bench': '[test]'}
USAGE = 'usage: python3 dev.py {demo|test [--fast]|docs|bench} [extra arguments]'


def fingerprint(extra):
    """A hash of what the installation depends on: the extra and the files that pin it."""
    digest = hashlib.sha256(extra.encode())
    for name in ('pyproject.toml', 'constraints.txt'):
        with open(os.path.join(ROOT, name), 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()


def ensure_environment(extra):
    """Create .venv and install pydnn2 (editable) unless already up to date."""
    if not os.path.exists(PYTHON):
        print('creating the virtual environment in .venv ...', flush=True)
        venv.create(VENV, with_pip=True)
    wanted = fingerprint(extra)
    if os.path.exists(STAMP) and wanted in open(STAMP).read().split():
        return
    print(f'installing pydnn2{extra} and its requirements into .venv ...', flush=True)
    subprocess.check_call([PYTHON, '-m', 'pip', 'install', '-q', '-c', 'constraints.txt',
                           '-e', f'.{extra}'], cwd=ROOT)
    with open(STAMP, 'a') as f:
        f.write(wanted + '\n')


def run_steps(steps):
    """Run ``(name, command)`` steps in order; stop at the first that fails, saying which."""
    for name, command in steps:
        shown = ' '.join(os.path.relpath(c, ROOT) if c == PYTHON else c for c in command)
        print(f'== {name}: {shown}', flush=True)
        code = subprocess.call(command, cwd=ROOT)
        if code != 0:
            print(f'== {name} failed (exit code {code}); the later steps did not run',
                  flush=True)
            return code
    return 0


def test_steps(args):
    """The steps of ``dev.py test``: lint, type check, docs (not with --fast), pytest."""
    fast = '--fast' in args
    args = [a for a in args if a != '--fast']
    steps = [('lint (ruff)', LINT), ('type check (mypy)', TYPECHECK)]
    if fast:       # the whole fast subset in two workers; a selection (paths, -k) in one
        workers = [] if args else XDIST
        return steps + [('fast tests (pytest -m "not slow")',
                         PYTEST + workers + ['-m', 'not slow'] + args)]
    return steps + [('docs (sphinx, warnings are errors)', DOCS),
                    ('tests (pytest, two workers)', PYTEST + XDIST + args)]


def main(argv):
    """Run the task ``argv[1]`` with the arguments after it."""
    if len(argv) < 2 or argv[1] not in EXTRAS:
        print(USAGE)
        return 2
    task, args = argv[1], argv[2:]
    ensure_environment(EXTRAS[task])
    if task == 'test':
        return run_steps(test_steps(args))
    if task == 'docs':
        code = run_steps([('docs (sphinx, warnings are errors)', DOCS + args)])
        if code == 0:
            print(f'== the site is in {os.path.join(DOCS_OUT, "index.html")}')
        return code
    script = {'demo': os.path.join('examples', 'digits.py'),
              'bench': os.path.join('benchmarks', 'run_all.py')}[task]
    return subprocess.call([PYTHON, script] + args, cwd=ROOT)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
