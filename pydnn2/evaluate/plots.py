"""Pictures of training and of a trained net's mistakes, drawn with matplotlib.

matplotlib is an optional extra (``pip install pydnn2[plot]``); it is
imported only when a picture is drawn, and a missing matplotlib raises
:class:`~pydnn2.errors.MissingDependencyError` naming the extra.

- :func:`plot_history`: the learning curves (loss, error, learning rate);
- :func:`plot_confusion`: the confusion matrix, counts and row-normalised;
- :func:`plot_mistakes`: the worst mistakes, highest loss first;
- :func:`plot_images`: tiles of any images;
- :func:`plot_augmentation`: training images as read and as the
  preprocessor serves them (rotated, flipped, stretched).

Each returns a ``matplotlib.figure.Figure`` and, given ``path=``, writes it
there too (PNG, PDF, SVG: by the extension). Figures are drawn on an Agg
canvas, never registered with ``pyplot``: no display is needed, redrawing
every epoch leaks nothing, and in a notebook a figure shows once, when it is
the cell's value or is passed to ``IPython.display.display`` (each function
shows an example).
"""

import math
import os
import sys

import numpy as np

from .. import checks
from ..errors import ConfigError, DataError, MissingDependencyError
from ..files import atomic_write_figure
from .confusion import checked_counts
from .interpret import Interpretation, input_row, interpret

#: How to install what the pictures need.
PLOT_EXTRA = 'pip install pydnn2[plot]'
#: Confusion matrices with at most this many classes get a number in each cell.
ANNOTATE_UP_TO = 20


def _matplotlib():
    """Import matplotlib, or raise MissingDependencyError naming the ``plot`` extra."""
    try:
        import matplotlib
        import matplotlib.colors
        import matplotlib.figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as exc:
        raise MissingDependencyError(f'pictures need matplotlib, an optional extra: {PLOT_EXTRA} '
                          f'(received ImportError: {exc})') from None
    ipython = sys.modules.get('IPython')
    if ipython is not None and ipython.get_ipython() is not None:
        import matplotlib.pyplot  # in a notebook: registers figure display
    return matplotlib, FigureCanvasAgg


def _new_figure(size):
    """A figure of ``size`` inches on an Agg canvas, laid out without overlaps."""
    matplotlib, canvas = _matplotlib()
    fig = matplotlib.figure.Figure(figsize=size, layout='constrained')
    canvas(fig)
    return fig


def _finish(fig, path, dpi=100):
    """Write ``fig`` to ``path`` when given, atomically (in the format its name says)."""
    if path is not None:
        atomic_write_figure(fig, path, dpi)
    return fig


def _as_display(image, where):
    """An image as floats in [0, 1]: ``(H, W)`` grey or ``(H, W, 3|4)`` colour.

    Accepts ``(H, W)``, ``(C, H, W)`` and ``(H, W, C)`` with ``C`` 1, 3 or 4,
    and rows of a square number of values. Integers are grey levels 0..255;
    floats are stretched from their own minimum to maximum.
    """
    a = np.asarray(image.detach().cpu() if hasattr(image, 'detach') else image)
    shape = a.shape
    if a.ndim == 1 and a.size and math.isqrt(a.size) ** 2 == a.size:
        a = a.reshape(math.isqrt(a.size), -1)          # (H*W,) -> (H, W)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)                     # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or not a.size:
        raise DataError(f'{where}: expected an image (H, W), (C, H, W) or (H, W, C) with C '
                        f'1, 3 or 4, received shape {shape}')
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        return np.clip(a.astype(np.float64) / (1 if a.dtype == bool else 255), 0, 1)
    a = np.nan_to_num(a.astype(np.float64))
    low, high = a.min(), a.max()
    return (a - low) / (high - low) if high > low else np.full_like(a, 0.5)


def _draw_tiles(fig, images, titles, cols, fontsize=8):
    """One small axes per image, in rows of ``cols``, titled, without ticks."""
    rows = max(1, math.ceil(len(images) / cols))
    grid = fig.add_gridspec(rows, cols)
    for n, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(grid[n // cols, n % cols])
        ax.imshow(image, cmap='gray', vmin=0, vmax=1, interpolation='nearest')  # grey or RGB
        ax.set_title(title, fontsize=fontsize)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _grid_size(count, cols, tile, title_lines):
    cols = max(1, min(count, cols or math.ceil(math.sqrt(count))))
    rows = max(1, math.ceil(count / cols))
    return cols, (cols * tile, rows * (tile + 0.16 * title_lines) + 0.4)


def plot_images(images, titles=None, cols=None, tile=1.6, show_size=True, suptitle=None,
                path=None):
    """Tiles of images of any sizes (pydnn's ``show_images_as_tiles``).

    Parameters
    ----------
    images : sequence of arrays, or an array (N, H, W) / (N, C, H, W)
        Each ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)`` (``C`` 1, 3 or 4),
        uint8 grey levels (0 black, 255 white) or floats (each image
        stretched from its minimum to its maximum). Tensors are welcome.
    titles : sequence of str, optional
        One per image.
    cols : int, optional
        Tiles per row (default: about the square root of the count).
    tile : float
        Width of a tile in inches.
    show_size : bool
        Add each image's ``height x width`` to its title.
    suptitle, path : str, optional
        A title over the figure; a file to write the figure to.

    Examples
    --------
    >>> images, _, _ = pydnn2.data.load_digits()              # doctest: +SKIP
    >>> plot_images(images[:20], titles=[str(i) for i in range(20)])   # doctest: +SKIP
    """
    images = list(images)
    if not images:
        raise DataError('plot_images: expected at least one image, received none')
    titles = [''] * len(images) if titles is None else [str(t) for t in titles]
    if len(titles) != len(images):
        raise ConfigError(f'plot_images: expected one title per image ({len(images)}), '
                          f'received {len(titles)}')
    shown = [_as_display(image, f'plot_images: image {i}') for i, image in enumerate(images)]
    if show_size:
        titles = [f'{t}\n{im.shape[0]}x{im.shape[1]}'.strip() for t, im in zip(titles, shown)]
    cols = checks.integer(cols, 'cols', 1, none=True, where='plot_images')
    cols, size = _grid_size(len(shown), cols, tile, max(t.count('\n') + 1 for t in titles))
    fig = _draw_tiles(_new_figure(size), shown, titles, cols)
    if suptitle:
        fig.suptitle(suptitle)
    return _finish(fig, path)


def _history_dict(history):
    history = getattr(history, 'history', history)
    if not isinstance(history, dict) or 'epoch' not in history:
        raise ConfigError('plot_history: expected a history (the dict of lists train returns) '
                          f'or a trained net, received {type(history).__name__}')
    return history


def _series(history, key):
    """``history[key]`` as floats, NaN where missing."""
    values = history.get(key) or [None] * len(history['epoch'])
    return np.array([np.nan if v is None else float(v) for v in values])


def _shade_final(ax, epochs, phases):
    """Shade the epochs of the final phase (trained on all the data)."""
    final = [e for e, p in zip(epochs, phases) if p == 'final']
    if final:
        ax.axvspan(min(final) - 0.5, max(final) + 0.5, color='0.85', zorder=0,
                   label='final epochs')


def _history_axes(fig, axes):
    if axes is not None:
        axes = list(axes)
        if len(axes) != 3:
            raise ConfigError('plot_history: expected axes as three matplotlib Axes (loss, '
                              f'error, learning rate), received {len(axes)}')
        for ax in axes:
            ax.clear()
        return axes[0].figure, axes
    fig = fig or _new_figure((13, 3.8))
    fig.clear()
    return fig, list(fig.subplots(1, 3))


def _draw_curves(ax, history, kind, epochs, marker):
    scale = 100 if kind == 'error' else 1
    for part, style, label in (('train', '-', 'train'), ('valid', '-', 'valid'),
                               ('test', '--', 'test (at each new best valid)')):
        values = _series(history, f'{part}_{kind}') * scale
        present = ~np.isnan(values)                   # the test set is not run every epoch
        if present.any():
            ax.plot(epochs[present], values[present], style, marker=marker, markersize=3,
                    label=label)
    if kind == 'loss':
        valid = _series(history, 'valid_loss')
        if not np.all(np.isnan(valid)):
            best = int(np.nanargmin(valid))
            ax.plot(epochs[best], valid[best], '*', color='black', markersize=10,
                    label=f'best valid (epoch {int(epochs[best])})')
    ax.set_ylabel('error (%)' if kind == 'error' else kind)


def plot_history(history, fig=None, axes=None, title=None, path=None):
    """The learning curves: loss, error and learning rate by epoch.

    Train, valid and test curves (where recorded: validation in the main
    phase, the test set at each new best validation loss); the best
    validation loss is starred and the final phase's epochs (trained on all
    the data) are shaded.

    Parameters
    ----------
    history : dict of lists, or a trained net
        What ``train`` returns (``net.history``).
    fig : matplotlib.figure.Figure, optional
        Clear this figure and draw into it, so that a callback can redraw
        one figure every epoch (then update its display handle).
    axes : sequence of three Axes, optional
        Or clear these (loss, error, learning rate) and draw into them.
    title, path : str, optional
        A title over the figure; a file to write the figure to.

    Examples
    --------
    >>> fig = plot_history(net.train(rule, epochs=10))      # doctest: +SKIP
    >>> plot_history(net.history, fig=fig)                  # doctest: +SKIP
    """
    history = _history_dict(history)
    if fig is not None and axes is not None:
        raise ConfigError('plot_history: expected fig or axes, received both')
    fig, axes = _history_axes(fig, axes)
    epochs, phases = np.array(history['epoch'], np.float64), history.get('phase') or []
    marker = 'o' if len(epochs) <= 30 else None
    for ax, kind in zip(axes, ('loss', 'error')):
        _draw_curves(ax, history, kind, epochs, marker)
    rates = _series(history, 'learning_rate')
    if len(epochs):
        axes[2].plot(epochs, rates, marker=marker, markersize=3, color='tab:purple')
    if np.nanmin(rates, initial=np.inf) > 0 and np.nanmax(rates, initial=0) > 10 * np.nanmin(
            rates, initial=np.inf):
        axes[2].set_yscale('log')
    elif len(epochs):
        axes[2].set_ylim(0, 1.1 * np.nanmax(rates, initial=0) or 1)
    axes[2].set_ylabel('learning rate')
    for ax in axes:
        _shade_final(ax, epochs, phases)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        if len(epochs) == 0:
            ax.text(0.5, 0.5, 'no epochs yet', ha='center', transform=ax.transAxes)
    if len(epochs):
        axes[0].legend(fontsize=8)
        axes[1].legend(fontsize=8)
    fig.suptitle(title or f'learning curves: {len(epochs)} epochs')
    return _finish(fig, path)


def _tick_labels(ax, names, side):
    """Class names on both axes, as large as fit, thinned when they cannot."""
    k = len(names)
    size = min(10.0, 0.8 * side * 72 / k)     # points per class along a side
    step = 1 if size >= 4 else math.ceil(4 / size)
    ticks = np.arange(0, k, step)
    rotation = 90 if max(len(n) for n in names) > 2 else 0
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=rotation, fontsize=max(size, 4))
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=max(size, 4))


def _annotate(ax, values, norm, fmt):
    """Write each cell's value that is not 0 (dark cells get white text)."""
    for (a, p), v in np.ndenumerate(values):
        if v and not np.isnan(v):
            ax.text(p, a, fmt(v), ha='center', va='center', fontsize=7,
                    color='white' if norm(v) > 0.6 else 'black')


def _confusion_colours(matplotlib, values, normalized):
    """A log colour scale that starts visibly above white, so that a single
    mistake shows at 121 classes; cells of 0 stay white."""
    blues = matplotlib.colormaps['Blues']
    cmap = matplotlib.colors.ListedColormap(blues(np.linspace(0.2, 1, 256)))
    cmap = cmap.with_extremes(bad='white', under='white')
    positive = values[values > 0]
    low = (positive.min() if len(positive) else 1.0) if normalized else 1.0
    high = 1.0 if normalized else max(2.0, values.max())
    return cmap, matplotlib.colors.LogNorm(vmin=min(low, high / 10), vmax=high)


def _confusion_panel(fig, ax, matrix, names, normalized, annotate, side):
    matplotlib, _ = _matplotlib()
    rows = matrix.sum(1)
    values = matrix.astype(np.float64)
    if normalized:
        values = values / np.where(rows > 0, rows, np.nan)[:, None]
    cmap, norm = _confusion_colours(matplotlib, values, normalized)
    shown = np.ma.masked_where(~(values > 0), values)      # 0 and NaN: white
    image = ax.imshow(shown, cmap=cmap, norm=norm, interpolation='nearest')
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label=(
        'share of the actual class (%)' if normalized else 'rows') + ', log scale')
    if normalized:
        ticks = [t for t in (.01, .02, .05, .1, .2, .5, 1) if norm.vmin <= t]
        bar.set_ticks(ticks, labels=[f'{100 * t:g}' for t in ticks])
    ax.set_xlabel('predicted')
    ax.set_ylabel('actual')
    ax.set_title('row-normalised (%)' if normalized else 'counts')
    _tick_labels(ax, names, side)
    if annotate:
        _annotate(ax, values, norm, (lambda v: f'{100 * v:.0f}') if normalized
                  else (lambda v: f'{int(v)}'))


def plot_confusion(matrix, class_names=None, normalize='both', annotate=None, title=None,
                   path=None):
    """The confusion matrix: rows actual classes, columns predicted.

    Parameters
    ----------
    matrix : array_like (K, K) or Interpretation
        Counts (e.g. from ``net.get_confusion_matrices()``; finite and not
        negative, else a :class:`~pydnn2.errors.DataError`), or an
        :class:`~pydnn2.evaluate.interpret.Interpretation` (its matrix and
        class names).
    class_names : sequence of str, optional
        One per class (default: the interpretation's, else ``0 .. K-1``).
    normalize : bool or 'both'
        False: the counts; True: each row divided by its total (recall on
        the diagonal); 'both': the two side by side.
    annotate : bool, optional
        Write the values in the cells (default: up to :data:`ANNOTATE_UP_TO`
        classes). Colours follow a log scale, so one mistake shows among
        121 classes; names shrink to fit, and are thinned when they cannot.
    title, path : str, optional
        A title over the figure; a file to write the figure to.

    Examples
    --------
    >>> (_, _), (valid, _), _ = net.get_confusion_matrices()   # doctest: +SKIP
    >>> plot_confusion(valid, image_set.get_labels())          # doctest: +SKIP
    """
    names = class_names
    if isinstance(matrix, Interpretation):
        names = matrix.class_names if names is None else names
        title = title or f'confusion matrix of the {matrix.set_name} set'
        matrix = matrix.confusion
    matrix = checked_counts(matrix, 'plot_confusion')
    k = len(matrix)
    names = [str(i) for i in range(k)] if names is None else [str(n) for n in names]
    if len(names) != k:
        raise ConfigError(f'plot_confusion: expected {k} class names, received {len(names)}')
    checks.one_of(normalize, 'normalize', (False, True, 'both'), where='plot_confusion')
    panels = [False, True] if normalize == 'both' else [normalize]
    side = min(16.0, max(4.0, 0.13 * k + 2.5))
    fig = _new_figure((len(panels) * (side + 1.6), side + 0.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    annotate = k <= ANNOTATE_UP_TO if annotate is None else annotate
    for ax, normalized in zip(axes, panels):
        _confusion_panel(fig, ax, matrix, names, normalized, annotate, side)
    fig.suptitle(title or f'confusion matrix: {int(matrix.sum())} rows, {k} classes')
    return _finish(fig, path)


def _mistake_title(interp, row, names, file_names):
    """Actual and predicted class, their probabilities, and the row's file: the
    last two parts of its path, else ``file 12`` (a file index) or ``row 3``."""
    a, p = interp.actual[row], interp.predicted[row]
    if interp.files is None:
        label = f'row {row}'
    elif file_names is None:
        label = f'file {interp.files[row]}'
    else:
        index = int(interp.files[row])
        name = file_names(index) if callable(file_names) else file_names[index]
        label = '/'.join(os.path.normpath(os.fspath(name)).split(os.sep)[-2:])
        label = label if len(label) <= 28 else '...' + label[-25:]
    return (f'{names[a]} taken for {names[p]}\np={interp.probabilities[row, p]:.2f}, '
            f'actual {interp.probabilities[row, a]:.2f}\n{label}')


def plot_mistakes(source, data='valid', count=16, class_names=None, file_names=None, cols=None,
                  tile=1.8, path=None):
    """The worst mistakes, highest loss first: each image with its actual and
    predicted class, the probability given to each and its file.

    Parameters
    ----------
    source : NN or Interpretation
        A trained net (interpreted on ``data``), or an interpretation.
    data : str or (x, classes)
        The set, when ``source`` is a net (see :func:`interpret`).
    count : int
        How many mistakes to show.
    class_names : sequence of str, optional
        One per class (default: the interpretation's).
    file_names : callable or sequence, optional
        Maps a file index to its file, e.g. ``image_set.file_name`` or
        ``image_set.files`` of the :class:`~pydnn2.data.DirectoryLabeledImageSet`
        that was split; without it tiles show the file index.
    cols, tile, path
        As for :func:`plot_images`.

    Examples
    --------
    >>> plot_mistakes(net, 'valid', file_names=image_set.file_name)   # doctest: +SKIP
    """
    count = checks.integer(count, 'count', 1, where='plot_mistakes')
    interp = source if isinstance(source, Interpretation) else interpret(source, data,
                                                                          class_names)
    names = interp.class_names if class_names is None else [str(n) for n in class_names]
    rows = interp.wrong[:count]
    if not len(rows):
        fig = _new_figure((4, 1.5))
        fig.text(0.5, 0.5, f'no mistakes on the {interp.set_name} set', ha='center')
        return _finish(fig, path)
    images = [_as_display(interp.image(r), f'plot_mistakes: row {r}') for r in rows]
    titles = [_mistake_title(interp, r, names, file_names) for r in rows]
    cols, size = _grid_size(len(images), cols, tile, 3)
    fig = _draw_tiles(_new_figure(size), images, titles, cols, fontsize=7)
    fig.suptitle(f'worst mistakes on the {interp.set_name} set, highest loss first '
                 f'({len(interp.wrong)} in all)')
    return _finish(fig, path)


def augmented_samples(net, count=8, rows=None, channel=None):
    """Training rows as read and as the preprocessor serves them next.

    Calls ``net.preprocessor.get_train()`` between ``random_state()`` and
    ``set_random_state()``, so looking does not move the augmentation schedule on:
    the next epoch of training sees exactly these transforms.

    Returns
    -------
    (raw, served, classes)
        ``raw``: a list of the rows as read (``get_raw_x()``); ``served``:
        a float array ``(n, ...)`` of the standardised rows of ``channel``
        (default: the net's); ``classes``: ``(n,)``.
    """
    pre = net.preprocessor
    channel = channel or net.channel
    state = pre.random_state()
    try:
        x, y = pre.get_train()
    finally:
        pre.set_random_state(state)
    if channel not in x:
        raise ConfigError(f'plot_augmentation: expected a channel among {sorted(x)}, '
                          f'received {channel!r}')
    rows = np.arange(min(count, len(y))) if rows is None else np.asarray(rows, np.int64)
    served = x[channel][rows].detach().cpu().numpy()
    raw = [input_row(pre.get_raw_x()[0], r, channel) for r in rows]
    return raw, served, y[rows].cpu().numpy()


def plot_augmentation(net, count=8, rows=None, channel=None, class_names=None, tile=1.6,
                      path=None):
    """Training images as read (top row) and as the preprocessor serves them
    for the next epoch (bottom row: rotated, flipped, stretched, standardised;
    each rescaled for display). Does not move the augmentation schedule on;
    see :func:`augmented_samples`.

    Parameters
    ----------
    net : NN
    count : int
        How many training images (the first ones, unless ``rows`` is given).
    rows : sequence of int, optional
        Which training rows.
    channel : str, optional
        The channel to show (default: the net's).
    class_names : sequence of str, optional
    tile, path
        As for :func:`plot_images`.

    Examples
    --------
    >>> plot_augmentation(net, count=6, path='augmentation.png')   # doctest: +SKIP
    """
    count = checks.integer(count, 'count', 1, where='plot_augmentation')
    raw, served, classes = augmented_samples(net, count, rows, channel)
    names = class_names or [str(i) for i in range(net.num_classes)]
    shown = ([_as_display(r, 'plot_augmentation: raw image') for r in raw]
             + [_as_display(s, 'plot_augmentation: served image') for s in served])
    n = len(raw)
    titles = ([f'{names[c]} as read\n{im.shape[0]}x{im.shape[1]}'
               for c, im in zip(classes, shown)]
              + [f'served\n{im.shape[0]}x{im.shape[1]}' for im in shown[n:]])
    fig = _draw_tiles(_new_figure((max(4.0, n * tile), 2 * (tile + 0.35) + 0.5)), shown,
                      titles, n)
    fig.suptitle('training images as read (top) and as served next epoch (bottom)')
    return _finish(fig, path)
