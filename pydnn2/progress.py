"""Progress bars that suit where the output goes.

Every progress bar in pydnn2 (epochs in training, files read in threads)
comes from :func:`progress_bar`, which looks at where the output goes
(:func:`where`):

- a notebook (a Jupyter kernel): a widget bar (``tqdm.notebook``) when
  ``ipywidgets`` is installed, otherwise one line of text updated in place
  through an IPython display handle (:class:`NotebookLine`), never a stream
  of lines;
- a terminal (``stderr`` is a TTY): tqdm's usual bar on ``stderr``;
- anything else (output redirected to a file, captured by pytest, a batch
  job): no progress output at all.

:func:`write` prints a line (such as a row of the epoch table) without
breaking a bar drawn in the terminal.
"""

import io
import sys

from tqdm import std

NOTEBOOK, TERMINAL = 'notebook', 'terminal'
NOTEBOOK_INTERVAL = 0.5       # seconds between updates of a notebook's text line


def in_notebook():
    """Whether this process is a Jupyter kernel (a notebook, JupyterLab, VS Code, Colab).

    IPython in a terminal is not a notebook; IPython is only looked at when
    something has imported it already.
    """
    ipython = sys.modules.get('IPython')
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    return getattr(shell, 'kernel', None) is not None or 'IPKernelApp' in shell.config


def where(stream=None):
    """Where progress would show: ``'notebook'``, ``'terminal'`` or None (nowhere).

    ``stream`` is what a terminal bar would write to (default ``sys.stderr``).
    """
    if in_notebook():
        return NOTEBOOK
    stream = sys.stderr if stream is None else stream
    try:
        return TERMINAL if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError):      # no isatty, or a closed stream
        return None


def has_widgets():
    """Whether ``ipywidgets`` (which ``tqdm.notebook`` draws with) is installed."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class NotebookLine(std.tqdm):
    """A tqdm bar drawn as one line of text in a notebook cell, updated in place.

    For notebooks without ``ipywidgets``: tqdm's text bar would write a new
    line to the cell's ``stderr`` at every refresh. This one keeps a single
    IPython display handle, refreshed at most every ``NOTEBOOK_INTERVAL``
    seconds, and cleared on ``close`` unless ``leave``.
    """

    def __init__(self, *args, **kwargs):
        self._handle = None
        kwargs.update(file=io.StringIO(), dynamic_ncols=False, ncols=100)
        kwargs.setdefault('mininterval', NOTEBOOK_INTERVAL)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        """Show ``msg`` (default: the bar) in the cell's one line of progress."""
        from IPython.display import display
        text = {'text/plain': self.__str__() if msg is None else msg}
        if self._handle is None:
            if not text['text/plain']:
                return True
            self._handle = display(text, raw=True, display_id=True)
        else:
            self._handle.update(text, raw=True)
        return True


def progress_bar(total=None, desc=None, enabled=True, leave=False, **options):
    """A tqdm progress bar for where the output goes (see the module's notes).

    Parameters
    ----------
    total : int, optional
        Number of steps.
    desc : str, optional
        The bar's label.
    enabled : bool
        False: no bar, wherever the output goes.
    leave : bool
        Keep the finished bar on screen.
    **options
        Passed to tqdm (``initial``, ``delay``, ``unit``, ...).

    Returns
    -------
    tqdm.tqdm
        ``update()`` it and ``close()`` it; a disabled bar does nothing.

    Examples
    --------
    >>> bar = progress_bar(total=3, desc='reading')
    >>> for _ in range(3):
    ...     bar.update()
    >>> bar.close()
    """
    place = where() if enabled else None
    if place == NOTEBOOK and has_widgets():
        from tqdm.notebook import tqdm as widget_bar
        return widget_bar(total=total, desc=desc, leave=leave, **options)
    if place == NOTEBOOK:
        return NotebookLine(total=total, desc=desc, leave=leave, **options)
    return std.tqdm(total=total, desc=desc, leave=leave, file=sys.stderr,
                    disable=place is None, **options)


def write(message):
    """Print ``message`` on its own line, clearing and redrawing any terminal bar."""
    std.tqdm.write(message)
