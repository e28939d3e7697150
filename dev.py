#!/usr/bin/env python3
"""Set up and run pydnn2 on a fresh machine: ``python3 dev.py demo|test|bench``.

Creates (or reuses) a virtual environment in ``.venv``, installs pydnn2 and
what it needs there (pinned by ``constraints.txt``), then runs the demo, the
test suite or the benchmarks. Reinstalls only when setup.cfg or the
constraints change.
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

COMMANDS = {
    'demo': [PYTHON, os.path.join('examples', 'digits.py')],
    'test': [PYTHON, '-m', 'pytest', '-q', 'tests'],
    'bench': [PYTHON, os.path.join('benchmarks', 'run_all.py')],
}
EXTRAS = {'demo': '', 'test': '[test]', 'bench': '[test]'}


def fingerprint(extra):
    digest = hashlib.sha256(extra.encode())
    for name in ('setup.cfg', 'setup.py', 'constraints.txt'):
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


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(f'usage: python3 dev.py {{{"|".join(COMMANDS)}}} [extra arguments]')
        return 2
    task = argv[1]
    ensure_environment(EXTRAS[task])
    return subprocess.call(COMMANDS[task] + argv[2:], cwd=ROOT)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
