"""A Sphinx directive that lists a module's public names (its ``__all__``) with links,
and references to re-exported names that resolve to where each object is documented.

``.. public-names:: pydnn2.data`` makes a table of every name in the module's
``__all__``: the name, a link to where it is documented (the module that
defines it, its *home*) and the first line of its docstring. Under
``nitpicky`` a name whose home has no API entry breaks the build, so the
reference cannot silently miss a public name.
"""

import ast
import importlib
import inspect
import os
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _imports(module):
    """``{name: source module}`` of the names ``module`` imports from pydnn2 modules,
    and the list of modules it star-imports."""
    path = inspect.getsourcefile(module)
    package = module.__name__
    if not path.endswith('__init__.py'):
        package = package.rpartition('.')[0]
    names, stars = {}, []
    for node in ast.parse(open(path, encoding='utf-8').read()).body:
        if not isinstance(node, ast.ImportFrom):
            continue
        base = package.split('.')
        base = base[:len(base) - node.level + 1] if node.level else []
        source = '.'.join(base + (node.module.split('.') if node.module else []))
        for alias in node.names:
            if alias.name == '*':
                stars.append(source)
            else:
                names[alias.asname or alias.name] = source
    return names, stars


def _defines(module, name):
    """Whether ``module``'s own source assigns ``name`` at its top level."""
    tree = ast.parse(open(inspect.getsourcefile(module), encoding='utf-8').read())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            if any(isinstance(n, ast.Name) and n.id == name for n in names):
                return True
    return False


def home(module_name, name):
    """The full name under which ``module_name.name`` is documented: a module's own
    name, a class's or function's ``module.qualname``, or for data the module whose
    source assigns it, found by following the imports."""
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if inspect.ismodule(obj):
        return obj.__name__
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith('pydnn2'):
        return f'{obj.__module__}.{obj.__qualname__}'
    if _defines(module, name):
        return f'{module_name}.{name}'
    names, stars = _imports(module)
    if name in names:
        return home(names[name], name)
    for source in stars:
        if name in getattr(importlib.import_module(source), '__all__', ()):
            return home(source, name)
    raise LookupError(f'cannot tell where {module_name}.{name} is defined')


def role_for(full_name):
    """The Python-domain role that links to ``full_name``."""
    module_name, _, attr = full_name.rpartition('.')
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ImportError:
        return 'mod'
    if inspect.ismodule(obj):
        return 'mod'
    if inspect.isclass(obj):
        return 'exc' if issubclass(obj, BaseException) else 'class'
    return 'func' if inspect.isfunction(obj) else 'data'


_ROLE = re.compile(r':(\w+):`([A-Za-z_]\w*)`')


def summary(obj):
    """The first paragraph of an object's docstring (data: its type), its bare
    references qualified with the object's module, as they are read there."""
    if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)):
        return f'a {type(obj).__name__}'
    doc = (inspect.getdoc(obj) or '').strip().split('\n\n')[0].replace('\n', ' ')
    module = obj.__name__ if inspect.ismodule(obj) else obj.__module__
    return _ROLE.sub(lambda m: f':{m[1]}:`~{module}.{m[2]}`', doc)


class PublicNames(SphinxDirective):
    """``.. public-names:: module``: a table of the module's ``__all__`` with links."""

    required_arguments = 1

    def run(self):
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        self.env.note_dependency(os.path.abspath(inspect.getsourcefile(module)))
        lines = ['.. list-table::', '   :header-rows: 1', '   :widths: 25 75', '',
                 '   * - name', '     - what it is']
        for name in module.__all__:
            target = home(module_name, name)
            text = summary(getattr(module, name)).replace('|', r'\|')
            lines += [f'   * - :py:{role_for(target)}:`{name} <{target}>`', f'     - {text}']
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f'<public names of {module_name}>'),
                                self.content_offset, container)
        return container.children


def _resolve_object(target):
    """The object a dotted pydnn2 name reaches, and the home of its module-level part:
    ``pydnn2.NN.predict`` -> ``pydnn2.net.NN.predict``. None when it reaches nothing."""
    parts = target.split('.')
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        if not hasattr(module, parts[cut]):
            return None
        try:
            start = home(module.__name__, parts[cut])
        except LookupError:
            return None
        obj = getattr(module, parts[cut])
        for attr in parts[cut + 1:]:
            if not hasattr(obj, attr):
                return None
            obj = getattr(obj, attr)
        obj = getattr(obj, 'fget', obj)                 # a property: its getter
        qualname = getattr(obj, '__qualname__', '')
        if (inspect.isroutine(obj) or inspect.isclass(obj)) and '<' not in qualname \
                and getattr(obj, '__module__', '').startswith('pydnn2'):
            return f'{obj.__module__}.{qualname}'       # where an inherited method is
        return '.'.join([start] + parts[cut + 1:])
    return None


def resolve_alias(app, env, node, contnode):
    """A reference to a re-exported name (``pydnn2.NN``, ``pydnn2.preprocess.Rotator360``),
    or a bare name that the docstring's module imports (``DataError`` in
    :mod:`pydnn2.net`), links to the entry where the object is documented; anything
    else stays unresolved (and, under nitpicky, is reported)."""
    target = node.get('reftarget', '')
    if node.get('refdomain') != 'py':
        return None
    if target.startswith('pydnn2.'):
        found = _resolve_object(target)
    else:                    # a bare name: what it means where the docstring is
        context = [node.get('py:module'), node.get('py:class')]
        scopes = ['.'.join(c for c in context if c), node.get('py:module')]
        found = next((f for f in (_resolve_object(f'{scope}.{target}') for scope in scopes
                                  if scope and scope.startswith('pydnn2')) if f), None)
    if found is None or found == target:
        return None
    domain = env.domains['py']
    return domain.resolve_xref(env, node['refdoc'], app.builder, node['reftype'], found, node,
                               contnode)


def skip_foreign(app, what, name, obj, skip, options):
    """Leave out members that another package defined on a pydnn2 class (scikit-learn's
    ``set_*_request`` methods): they are not pydnn2's API."""
    module = getattr(obj, '__module__', None)
    if what == 'class' and callable(obj) and module and not module.startswith('pydnn2'):
        return True
    return None


def drop_private_bases(app, name, obj, options, bases):
    """Show a private base class as its own bases (``_ImageFolder`` is not documented)."""
    expanded = []
    for base in bases:
        expanded += list(base.__bases__) if base.__name__.startswith('_') else [base]
    bases[:] = expanded


def _foreign_docstring(what, name, obj):
    """Whether autodoc would show another package's docstring for this pydnn2 entry:
    a constant's type's (``dict``'s), or a method's inherited from torch."""
    if what in ('data', 'attribute'):
        return inspect.getdoc(type(obj)) is not None and obj.__doc__ == type(obj).__doc__
    if what != 'method' or getattr(obj, '__doc__', None):
        return False
    owner_name, _, attr = name.rpartition('.')
    owner = _reach(owner_name)
    for klass in inspect.getmro(owner) if inspect.isclass(owner) else ():
        if getattr(klass.__dict__.get(attr), '__doc__', None):
            return not klass.__module__.startswith('pydnn2')
    return False


def _reach(full_name):
    """The object a full dotted name names, or None."""
    parts = full_name.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def drop_foreign_docstring(app, what, name, obj, options, lines):
    """Show no docstring rather than one pydnn2 did not write (it would describe
    torch's method, or ``dict``, not ours)."""
    if lines and _foreign_docstring(what, name, obj):
        lines[:] = []


def setup(app):
    """Register the directive and the hooks."""
    app.add_directive('public-names', PublicNames)
    app.connect('missing-reference', resolve_alias)
    app.connect('autodoc-skip-member', skip_foreign)
    app.connect('autodoc-process-bases', drop_private_bases)
    app.connect('autodoc-process-docstring', drop_foreign_docstring)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
