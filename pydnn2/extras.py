"""The optional extras: import a package a feature needs, or say which extra installs it.

>>> require('math', 'counting', 'plot').sqrt(4.0)
2.0
"""

import importlib

from .errors import MissingDependencyError


def require(module, feature, extra, package=None):
    """Import ``module`` (a dotted name) for ``feature``, or raise
    :class:`~pydnn2.errors.MissingDependencyError` naming ``pip install pydnn2[extra]``.

    Parameters
    ----------
    module : str
        What to import, e.g. ``'optuna'`` or ``'torch.utils.tensorboard'``.
    feature : str
        What needs it, in the user's terms (``'pydnn2.tune'``).
    extra : str
        The extra of pyproject.toml that installs it (``'tune'``).
    package : str, optional
        The package to name when it differs from the module's top level
        (``'tensorboard'`` for ``torch.utils.tensorboard``).

    Returns
    -------
    module
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split('.')[0]
        raise MissingDependencyError(
            f'{feature} needs {name}, an optional extra: install it with pip install '
            f'pydnn2[{extra}] (received ImportError: {exc})') from None
