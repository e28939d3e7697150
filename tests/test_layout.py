"""The package's shape holds: no import cycle (counting imports inside functions),
no module over 500 lines, no function over 50 lines of code, a docstring on
every public module, class and function."""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), os.pardir, 'pydnn2')


def modules():
    """``{dotted name: (path, is_package)}`` of every module of pydnn2."""
    found = {}
    for folder, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
                package = parts[-1] == '__init__'
                found['.'.join(parts[:-1] if package else parts)] = (path, package)
    return found


MODULES = modules()


def type_checking_only(tree):
    """The nodes under ``if TYPE_CHECKING:``: imports for annotations, never run."""
    return {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
            and ast.unparse(node.test) in ('TYPE_CHECKING', 'typing.TYPE_CHECKING')
            for statement in node.body for inner in ast.walk(statement)}


def imported(name, path, package):
    """The pydnn2 modules ``name`` imports, anywhere in its code (but not the imports
    under ``if TYPE_CHECKING:``, which only the type checker reads)."""
    base = name.split('.') if package else name.split('.')[:-1]
    targets = set()
    tree = ast.parse(open(path, encoding='utf-8').read())
    skipped = type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names if a.name.startswith('pydnn2')}
        elif isinstance(node, ast.ImportFrom):
            start = base[:len(base) - node.level + 1] if node.level else []
            module = '.'.join(start + (node.module.split('.') if node.module else []))
            if not module.startswith('pydnn2'):
                continue
            for alias in node.names:        # a submodule, or a name from the module itself
                sub = f'{module}.{alias.name}'
                targets.add(sub if sub in MODULES else module)
    return {t for t in targets if t in MODULES and t != name}


def find_cycle(graph):
    """A list of modules forming a cycle, or None."""
    state = {}

    def visit(node, path):
        state[node] = 'open'
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 'done'
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = {name: imported(name, path, package) for name, (path, package) in MODULES.items()}
    assert len(graph) > 30 and graph['pydnn2.net']       # the walk found the package
    assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))


def test_imports_for_annotations_only_are_not_counted(tmp_path):
    path = tmp_path / 'mod.py'
    path.write_text('from typing import TYPE_CHECKING\nfrom . import errors\n'
                    'if TYPE_CHECKING:\n    from .net import NN\n')
    assert imported('pydnn2.mod', str(path), False) == {'pydnn2.errors'}
    path.write_text('from . import errors\nif True:\n    from .net import NN\n')
    assert imported('pydnn2.mod', str(path), False) == {'pydnn2.errors', 'pydnn2.net'}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


@pytest.mark.parametrize('name', sorted(MODULES))
def test_modules_stay_under_500_lines(name):
    lines = open(MODULES[name][0], encoding='utf-8').read().count('\n')
    assert lines <= 500, f'{name} has {lines} lines; split it'


def code_lines(function):
    """Lines of a function that hold code: not its docstring, blank lines or comments."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    else:
        skip = set()
    lines = set()
    for node in ast.walk(function):
        if hasattr(node, 'lineno') and not isinstance(node, ast.expr_context):
            lines.update(range(node.lineno, getattr(node, 'end_lineno', node.lineno) + 1))
    return len(lines - skip)


@pytest.mark.parametrize('name', sorted(MODULES))
def test_functions_stay_under_50_lines_of_code(name):
    tree = ast.parse(open(MODULES[name][0], encoding='utf-8').read())
    long = {f.name: code_lines(f) for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(f) > 50}
    assert not long, f'{name}: {long}'


@pytest.mark.parametrize('name', sorted(MODULES))
def test_public_names_have_docstrings(name):
    tree = ast.parse(open(MODULES[name][0], encoding='utf-8').read())
    assert ast.get_docstring(tree), f'{name} has no module docstring'
    missing = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith('_'):
            if not ast.get_docstring(node) and not _typing_overload(node):
                missing.append(node.name)
            if isinstance(node, ast.ClassDef):
                missing += [f'{node.name}.{m.name}' for m in node.body
                            if isinstance(m, ast.FunctionDef) and not m.name.startswith('_')
                            and not ast.get_docstring(m) and not _overrides(m.name)
                            and not _typing_overload(m)]
    assert not missing, f'{name}: no docstring on {missing}'


def _typing_overload(node):
    """Whether ``node`` is an ``@overload`` signature for the type checker, whose
    implementation (the undecorated definition after it) carries the docstring."""
    return any(ast.unparse(d) in ('overload', 'typing.overload')
               for d in getattr(node, 'decorator_list', ()))


def _overrides(method):
    """Hooks and protocol methods documented once on their base class."""
    return method.startswith('on_') or method in {
        'forward', 'extra_repr', 'output_shape', 'make_module', 'describe', 'cost',
        'init_plan', 'out_dtype', 'activation_bytes', 'fill', 'epoch_done', 'make_optimizer',
        'step', 'state_dict', 'load_state_dict', 'training', 'prediction', 'from_state',
        'get_train', 'get_all_train', 'get_valid', 'get_test', 'get_raw_x', 'preprocess',
        'set_data', 'get_state', 'set_state', 'to'}
