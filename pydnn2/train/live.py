"""Live learning curves: a figure of the history that redraws itself every epoch.

``net.train(..., plot=True)`` (or ``callbacks=[LiveCurves()]``) shows the
learning curves of :func:`~pydnn2.evaluate.plots.plot_history` (loss, error
and learning rate; train, valid and test; the final epochs shaded) in a
notebook, and redraws them after every epoch in the same place: the figure
is displayed once, through one display handle, which each epoch updates.
Outside a notebook nothing is shown; ``plot='curves.png'`` (or
``LiveCurves('curves.png')``) also writes the figure to that file after
every epoch, atomically, anywhere; the path is checked when the callback is
made, before training (:func:`check_figure_path`).

>>> from pydnn2.train.config import TrainConfig
>>> with_live_curves(TrainConfig(plot=False)).callbacks is None
True
>>> config = with_live_curves(TrainConfig(plot='curves.png'))
>>> [type(c).__name__ for c in config.callbacks], config.callbacks[0].path
(['LiveCurves'], 'curves.png')
"""

import dataclasses
import os
import sys
import tempfile

from ..errors import ConfigError, MissingDependencyError
from ..evaluate.plots import PLOT_EXTRA, plot_history
from ..files import atomic_write_figure
from .callbacks import Callback


def in_notebook():
    """Whether this runs in a Jupyter kernel (IPython with a kernel), where
    figures can be displayed."""
    ipython = sys.modules.get('IPython')        # never import IPython for this
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, 'kernel', None) is not None


def display_figure(fig):
    """Display ``fig`` in the notebook once; returns its display handle, whose
    ``update(fig)`` redraws it in place."""
    import IPython.display
    return IPython.display.display(fig, display_id=True)


def show_figure(fig):
    """Display ``fig`` when in a notebook; returns the display handle or None."""
    return display_figure(fig) if in_notebook() else None


def _format_of(path):
    """The file format a figure path asks for: its extension, PNG without one."""
    return os.path.splitext(os.fspath(path))[1][1:].lower() or 'png'


def figure_formats():
    """The extensions matplotlib writes figures in (``['eps', 'jpeg', ..., 'webp']``)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise MissingDependencyError(f'plot= needs matplotlib, an optional extra: {PLOT_EXTRA} '
                                     f'(received ImportError: {exc})') from None
    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_figure_path(path):
    """``path`` (a str) when a figure can be written there; else a :class:`ConfigError`
    naming it and the problem: an extension matplotlib cannot write (listing those it
    can), a folder, or a place no file can be created in."""
    path = os.fspath(path)
    if _format_of(path) not in figure_formats():
        raise ConfigError(f'plot={path!r}: matplotlib cannot write a .{_format_of(path)} file; '
                          f'use one of {", ".join("." + f for f in figure_formats())}')
    if os.path.isdir(path):
        raise ConfigError(f'plot={path!r} is a folder; give the path of a file, such as '
                          f'{os.path.join(path, "curves.png")!r}')
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):             # (missing folders are made when writing)
        folder = os.path.dirname(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f'plot={path!r} cannot be written: no file can be created in '
                          f'{folder!r} ({exc.strerror})') from None
    return path


class LiveCurves(Callback):
    """Learning curves redrawn after every epoch, in place.

    In a notebook the figure is displayed once when training starts (with
    the epochs of a resumed run, or none yet) and its display is updated
    after each epoch; a figure is never displayed twice. With ``path`` the
    figure is also written there (PNG, PDF, SVG: by the extension) after
    each epoch.

    Parameters
    ----------
    path : str, optional
        A file to write the figure to after every epoch (checked here:
        :func:`check_figure_path`).
    display : bool, optional
        Show the figure (default: only in a notebook).
    title : str, optional
        A title over the figure (default: the net's name and the epoch count).

    Examples
    --------
    >>> net.train(nn.Adam(0.003), epochs=10,
    ...           callbacks=[LiveCurves('curves.png')])  # doctest: +SKIP
    """

    rank_zero_only = True

    def __init__(self, path=None, display=None, title=None):
        self.path = None if path is None else check_figure_path(path)
        self.display, self.title = display, title
        self.figure, self.handle, self.showing = None, None, False

    def on_train_begin(self, net, logs):
        self.showing = in_notebook() if self.display is None else bool(self.display)
        self.figure, self.handle = None, None
        self.redraw(net, save=False)

    def on_epoch_end(self, net, logs):
        self.redraw(net)

    def redraw(self, net, save=True):
        """Draw ``net.history`` into the one figure; update its display, write its file."""
        if not (self.showing or self.path):
            return
        epochs = len(net.history['epoch'])
        title = self.title or f'{net.name}: {epochs} epoch{"s" * (epochs != 1)}'
        self.figure = plot_history(net.history, fig=self.figure, title=title)
        if self.showing:
            if self.handle is None:
                self.handle = display_figure(self.figure)
            else:
                self.handle.update(self.figure)
        if self.path and save:
            atomic_write_figure(self.figure, self.path)

    def state_dict(self):
        """Nothing to keep: the curves are drawn from the history."""
        return {}


def with_live_curves(config):
    """``config`` with a :class:`LiveCurves` added to its callbacks when its
    ``plot`` option asks for one (True, or a path) and none is there yet."""
    callbacks = list(config.callbacks or [])
    if not config.plot or any(isinstance(c, LiveCurves) for c in callbacks):
        return config
    path = None if config.plot is True else config.plot
    return dataclasses.replace(config, callbacks=callbacks + [LiveCurves(path)])
