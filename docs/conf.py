"""Sphinx configuration of pydnn2's documentation: ``python3 dev.py docs`` builds it.

The build is strict: ``dev.py`` runs it with warnings as errors, and every
reference to a pydnn2 name must resolve (``nitpicky``). Nothing is fetched
from the network: there is no intersphinx, so names of Python, numpy and
torch are shown as written, unlinked.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '_ext'))
sys.path.insert(0, os.path.dirname(HERE))

import pydnn2  # noqa: E402 - after the path is set

project = 'pydnn2'
author = 'the pydnn2 developers'
copyright = '2026, the pydnn2 developers'
release = pydnn2.__version__
version = '.'.join(release.split('.')[:2])

extensions = ['sphinx.ext.autodoc', 'sphinx.ext.napoleon', 'public_names']
exclude_patterns = ['_build']
html_theme = 'furo'
html_title = f'pydnn2 {release}'
html_static_path = []
pygments_style = 'sphinx'

autodoc_member_order = 'bysource'
autodoc_default_options = {'members': True, 'show-inheritance': True}
autoclass_content = 'both'          # the class docstring and __init__'s
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

nitpicky = True
# Names outside pydnn2 cannot be linked without intersphinx (a download), and
# numpydoc-style types are often words ('int', 'optional', 'array of float') or
# shapes ('ndarray (N, K)'): types in lower case and single capitals are shown
# unlinked, as are numpy's, torch's and the other packages' names. Every other
# reference (a pydnn2 class, function, method, constant or module, written in
# full, re-exported or bare) must resolve.
EXTERNAL = r'(numpy|np|torch|sklearn|matplotlib|PIL|onnx|onnxruntime|tqdm|IPython|os|typing)\..*'
nitpick_ignore_regex = [('py:class', r'(?!pydnn2\b)[^A-Z].*|[A-Z]'), ('py:.*', EXTERNAL)]
# Type variables in annotations (``def recorded(method: F) -> F``) have no page.
nitpick_ignore = [('py:class', 'pydnn2.model.recording.F'),
                  ('py:class', 'pydnn2.preprocess.base._P')]
