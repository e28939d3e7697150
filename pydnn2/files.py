"""The one safe file format of nets and checkpoints (DESIGN decision 8).

A file is a dict of plain data and tensors: the recorded builder calls, the
weights and buffers, and the preprocessor's class name and state. Loading
uses ``torch.load(weights_only=True)``, which refuses anything that would
run code (:func:`read_file`); :meth:`pydnn2.NN.from_state` rebuilds the net
by replaying its calls. Writes are atomic: a temporary file in the same
folder, flushed and synced, then renamed over the target, so a crash never
leaves a half-written file in its place.
"""

import os
import pickle
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .errors import ConfigError, FileFormatError
from .version import __version__

FORMAT = 'pydnn2'
FORMAT_VERSION = 1
EXTENSION = '.pt'


def plain_tree(value):
    """Numpy values as tensors or Python scalars, so ``weights_only`` accepts them."""
    if isinstance(value, dict):
        return {k: plain_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_tree(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, sync, rename over it."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                                   dir=folder)
    except OSError as exc:
        raise ConfigError(f'cannot write {path!r}: {exc.strerror or exc}') from None
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _sync_folder(folder)
    return path


def _sync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj, path):
    """``torch.save(obj)`` to ``path`` atomically (temp file, fsync, rename)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode('utf-8')))


def header(kind):
    """The fields every pydnn2 file starts with: marker, versions, kind."""
    return {'format': FORMAT, 'format_version': FORMAT_VERSION, 'kind': kind,
            'pydnn2_version': __version__, 'torch_version': str(torch.__version__)}


def net_state(net, weights=None):
    """The plain-data description of a net that :func:`load` rebuilds
    (with ``weights``, a state dict, in place of the module's own)."""
    pre = net.preprocessor
    return {
        **header('net'),
        'config': {'channel': net.channel, 'num_classes': net.num_classes,
                   'batch_size': net.batch_size, 'activation': net.activation_name,
                   'name': net.name, 'output_dir': net.output_dir, 'seed': net.seed,
                   'initialization': net.initialization},
        'calls': plain_tree(net.calls),
        'weights': {k: v.detach().cpu()
                    for k, v in (weights or net.module.state_dict()).items()},
        'preprocessor': {'class': type(pre).__name__,
                         'state': plain_tree(pre.state_dict())},
    }


def save(nn, filename=None):
    """Save a net to one file; returns the file name.

    Parameters
    ----------
    nn : NN
        The net to save (its preprocessing statistics come along; its data
        sets do not).
    filename : str, optional
        Defaults to ``<output_dir>/<name>.pt``.
    """
    if filename is None:
        filename = os.path.join(nn.output_dir or '.', nn.name + EXTENSION)
    return atomic_save(net_state(nn), os.fspath(filename))


class BackgroundWriter:
    """Writes files in a background thread, one at a time and in order.

    The training loop hands it a snapshot (tensors it will not touch again)
    and goes on; a later :meth:`submit` or :meth:`wait` waits for the
    previous write and re-raises its error, if any.
    """

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='pydnn2-writer')
        self._pending = None

    def submit(self, obj, path):
        """Write ``obj`` to ``path`` atomically, in the background."""
        self.wait()
        self._pending = self._pool.submit(atomic_save, obj, path)

    def wait(self):
        """Block until the last write is done; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self):
        """Wait for the last write and stop the thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def _unpickler_reason(exc):
    lines = [line.strip() for line in str(exc).splitlines()]
    found = [line for line in lines if 'GLOBAL' in line]
    return (found or lines or ['refused'])[0]


def _corrupted(filename, exc):
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
    return FileFormatError(f'{filename!r} is truncated or corrupted, or not a pydnn2 file '
                           f'({type(exc).__name__}: {first[:200]})')


def read_file(filename, kind='net'):
    """Load a pydnn2 file's dict safely, with clear errors for bad files."""
    filename = os.fspath(filename)
    if not os.path.isfile(filename):
        raise FileFormatError(f'{filename!r} does not exist (or is not a file)')
    try:
        state = torch.load(filename, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        if 'GLOBAL' in str(exc):
            raise FileFormatError(
                f'{filename!r} is not a safe pydnn2 file: it names Python objects that would '
                f'run code when loaded, and pydnn2 refuses to load them ({_unpickler_reason(exc)})'
            ) from None
        raise _corrupted(filename, exc) from None
    except Exception as exc:  # torch's readers raise many types on damaged bytes
        raise _corrupted(filename, exc) from None
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise FileFormatError(f'{filename!r} is not a pydnn2 file (no pydnn2 format marker)')
    version = state.get('format_version')
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FileFormatError(
            f'{filename!r} was written in pydnn2 file format {version!r} by pydnn2 '
            f'{state.get("pydnn2_version")}; this pydnn2 reads format {FORMAT_VERSION} and '
            'older: upgrade pydnn2 to load it')
    if state.get('kind') != kind:
        raise FileFormatError(f'{filename!r} holds a pydnn2 {state.get("kind")!r}, '
                              f'not a {kind!r}')
    return state
