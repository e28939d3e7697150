"""The one safe file format of nets and checkpoints.

A file is a dict of plain data and tensors: the recorded builder calls, the
weights and buffers, and the preprocessor's class name and state, sealed
with a SHA-256 checksum of all of it (:func:`sealed`). Loading uses
``torch.load(weights_only=True)``, which refuses anything that would run
code, and verifies the checksum (:func:`read_file`);
:meth:`pydnn2.NN.from_state` rebuilds the net by replaying its calls, and a
file's name and folder are kept only when they cannot steer a later write
elsewhere (:func:`trusted_location`). Writes are atomic: a temporary file in
the same folder, flushed and synced, then renamed over the target, so a
crash or a full disk never leaves a half-written file in its place.
"""

import errno
import hashlib
import os
import pickle
import re
import stat
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .errors import ConfigError, FileFormatError, FileWriteError, Pydnn2Error
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


class _WatchedFile:
    """A file that remembers the ``OSError`` of a write: ``torch.save`` turns one
    (a full disk) into a ``RuntimeError`` ('unexpected pos') that hides it."""

    def __init__(self, file):
        self._file, self.error = file, None

    def write(self, data):
        """Write ``data``, remembering an ``OSError``."""
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self):
        """Flush, remembering an ``OSError``."""
        try:
            self._file.flush()
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self._file, name)


def _write_error(path, error):
    """A :class:`FileWriteError` naming ``path`` for the ``OSError`` that stopped a write."""
    if error.errno == errno.ENOSPC:
        reason = ('no space left on device; free some space or write to another folder '
                  '(output_dir)')
    else:
        reason = error.strerror or str(error)
    exc = FileWriteError(f'cannot write {path!r}: {reason} ({path!r} was left as it was)')
    exc.errno, exc.filename = error.errno, path
    return exc


def _write_target(path):
    """The file a write replaces: a symlink's target (the link stays), never a folder."""
    target = os.path.realpath(path) if os.path.islink(path) else path
    if os.path.isdir(target):
        raise ConfigError(f'cannot write {path!r}: it is a folder; give the path of a file '
                          '(inside it, for example)')
    return target


def _keep_mode(target, tmp):
    """Give the temporary file the permissions of the file it replaces, or those
    ``open`` would give a new file (0666 less the umask), not mkstemp's 0600."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp, mode)


def _umask():
    """The process's umask: from /proc on Linux, else by setting it and putting it back."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_TEMPORARY_SUFFIX = '.tmp'
# atomic_write's temporary files: '.<file name>.' + mkstemp's 8 random characters + '.tmp'
_TEMPORARY = re.compile(r'\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp\Z', re.DOTALL)


def temporary_target(name):
    """The file name whose :func:`atomic_write` made the temporary file ``name`` (a
    base name, ``.<target>.<8 random characters>.tmp``), or None for any other name."""
    match = _TEMPORARY.match(name)
    return match.group('target') if match else None


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, sync, rename over it.

    A symlink at ``path`` is written through (its target is replaced, the
    link kept), an existing file keeps its permissions (a new one gets
    those of ``open``: 0666 less the umask), a folder is refused
    (:class:`ConfigError`), and an ``OSError`` while writing (a full disk) is
    a :class:`FileWriteError` naming ``path``; ``path`` is then as it was.
    """
    path = os.fspath(path)
    target = _write_target(path)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(target)}.',
                                   suffix=_TEMPORARY_SUFFIX, dir=folder)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _write_error(path, exc) from exc
        raise ConfigError(f'cannot write {path!r}: {exc.strerror or exc}') from None
    watched = None
    try:
        with os.fdopen(fd, 'wb') as f:
            _keep_mode(target, tmp)
            watched = _WatchedFile(f)
            write(watched)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        error = watched.error if watched is not None else None
        if isinstance(exc, OSError) and not isinstance(exc, Pydnn2Error):
            error = error or exc
        if error is None or not isinstance(exc, Exception):
            raise
        raise _write_error(path, error) from error
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
    """``torch.save(obj)`` to ``path`` atomically (temp file, fsync, rename); a
    pydnn2 file's dict (one that starts with :func:`header`) is :func:`sealed`
    with its checksum first."""
    if isinstance(obj, dict) and obj.get('format') == FORMAT:
        obj = sealed(obj)
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode('utf-8')))


def atomic_write_figure(fig, path, dpi=100):
    """Write a matplotlib figure to ``path`` atomically, in the format its extension
    names (PNG without one)."""
    kind = os.path.splitext(os.fspath(path))[1][1:].lower() or 'png'
    return atomic_write(path, lambda f: fig.savefig(f, format=kind, dpi=dpi, facecolor='white'))


def header(kind):
    """The fields every pydnn2 file starts with: marker, versions, kind."""
    return {'format': FORMAT, 'format_version': FORMAT_VERSION, 'kind': kind,
            'pydnn2_version': __version__, 'torch_version': str(torch.__version__)}


def _feed(sha, value):
    """Hash ``value``: tensors by dtype, shape and bytes; containers item by item
    (dicts in order); other plain data by type and ``repr``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        sha.update(f'<tensor {tensor.dtype} {tuple(tensor.shape)}>'.encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy())      # no copy
    elif isinstance(value, np.ndarray) and value.dtype != object:
        sha.update(f'<ndarray {value.dtype.str} {value.shape}>'.encode())
        sha.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif isinstance(value, dict):
        sha.update(f'<dict {len(value)}>'.encode())
        for key, item in value.items():
            _feed(sha, key)
            _feed(sha, item)
    elif isinstance(value, (list, tuple)):
        sha.update(f'<{"list" if isinstance(value, list) else "tuple"} {len(value)}>'.encode())
        for item in value:
            _feed(sha, item)
    else:
        text = repr(value)
        sha.update(f'<{type(value).__name__} {len(text)}>{text}'.encode('utf-8', 'replace'))


def digest(state):
    """The SHA-256 (hex) of a file's dict: every entry but ``'checksum'``, tensors
    by dtype, shape and bytes, plain data by type and value."""
    sha = hashlib.sha256()
    _feed(sha, {k: v for k, v in state.items() if k != 'checksum'})
    return sha.hexdigest()


def sealed(state):
    """``state`` with its ``'checksum'``: ``{'sha256': digest(state)}``."""
    return {**state, 'checksum': {'sha256': digest(state)}}


def _verify(state, filename):
    """Raise :class:`FileFormatError` unless ``state`` matches its checksum (files
    written before checksums have none and are not verified)."""
    if 'checksum' not in state:
        return
    recorded = state['checksum']
    if not isinstance(recorded, dict) or not isinstance(recorded.get('sha256'), str):
        raise FileFormatError(f'{filename!r} is corrupted: its checksum record is damaged '
                              f'({recorded!r:.80})')
    try:
        actual = digest(state)
    except Exception as exc:  # noqa: BLE001 - crafted contents can fail anywhere
        raise _corrupted(filename, exc) from None
    if actual != recorded['sha256']:
        raise FileFormatError(
            f'{filename!r} failed its integrity check: checksum mismatch (its contents hash to '
            f'SHA-256 {actual[:16]}..., the file records {recorded["sha256"][:16]}...); it '
            'changed after pydnn2 wrote it (a disk or copy error?): use another copy')


_SEPARATORS = re.compile(r'[/\\]')


def _plain_name(name):
    """A file-name stem: no folder separators, not '.' or '..'."""
    return (isinstance(name, str) and name not in ('', '.', '..') and '\0' not in name
            and not _SEPARATORS.search(name))


def checked_name(name):
    """``name`` when it is a plain file name (the stem of the files a net writes), else a
    :class:`ConfigError`: the rule :func:`trusted_location` applies to loaded names."""
    if not _plain_name(name):
        raise ConfigError(
            "name must be a plain file name, the stem of the files training writes (e.g. "
            "'net'): not empty, '.' or '..', without folder separators ('/', '\\') or null "
            f'bytes; received {name!r}; choose the folder with output_dir')
    return name


def nonfinite(tensors):
    """The name of the first floating-point tensor of the dict ``tensors`` that holds NaN
    or infinity, or None when all are finite (one device read for the lot)."""
    floats = [(k, t) for k, t in tensors.items()
              if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())]
    if not floats:
        return None
    device = floats[0][1].device
    finite = torch.stack([torch.isfinite(t).all().to(device) for _, t in floats])
    if bool(finite.all()):
        return None
    return floats[int((~finite).nonzero()[0])][0]


def _weights_of(state, kind):
    """The weights dict of a file's ``state`` of ``kind`` (None if damaged)."""
    net = state.get('net') if kind == 'checkpoint' else state
    weights = net.get('weights') if isinstance(net, dict) else None
    return weights if isinstance(weights, dict) else None


def _verify_finite(state, kind, filename):
    """Raise :class:`FileFormatError` when a weight or buffer of the file holds NaN or
    infinity (a net saved after it diverged): it could only predict nonsense."""
    name = nonfinite(_weights_of(state, kind) or {})
    if name is not None:
        tensor = _weights_of(state, kind)[name]
        nan, total = int(torch.isnan(tensor).sum()), tensor.numel()
        raise FileFormatError(
            f'{filename!r} holds non-finite weights: {name!r} has {nan} NaN and '
            f'{int(torch.isinf(tensor).sum())} infinite values of {total}; a net whose training '
            'diverged cannot predict; use an earlier checkpoint or another copy')


def _relative_folder(folder):
    """A relative folder path that stays inside the working directory ('' is it)."""
    if not isinstance(folder, str) or '\0' in folder:
        return False
    if os.path.isabs(folder) or re.match(r'[/\\]|[A-Za-z]:', folder):
        return False                            # absolute here, or on Windows
    return '..' not in _SEPARATORS.split(folder)


def trusted_location(state, filename):
    """A loaded net's ``state`` whose ``name`` and ``output_dir`` cannot steer writes.

    A file never chooses where pydnn2 writes: its net's name is kept only when
    it is a plain file name (else ``'net'``), and its output folder only when
    it is a relative path without ``..`` (else ``''``, the working
    directory). An absolute folder is dropped quietly (it is where the file's
    writer worked, often elsewhere); a name or folder that climbs out (``..``,
    separators in a name) is dropped with a warning naming the file.
    """
    config = state.get('config') if isinstance(state, dict) else None
    if not isinstance(config, dict):
        return state                    # from_state reports a damaged file
    kept, suspicious = {}, []
    if 'name' in config and not _plain_name(config['name']):
        kept['name'] = 'net'
        suspicious.append(f'name {config["name"]!r}')
    if 'output_dir' in config and not _relative_folder(config['output_dir']):
        kept['output_dir'] = ''
        if not (isinstance(config['output_dir'], str) and os.path.isabs(config['output_dir'])
                and '..' not in _SEPARATORS.split(config['output_dir'])):
            suspicious.append(f'output_dir {config["output_dir"]!r}')
    if suspicious:
        warnings.warn(
            f'{filename!r} records {" and ".join(suspicious)}, which would write outside the '
            "folder chosen; a file never chooses where pydnn2 writes, so the loaded net uses "
            f'{", ".join(f"{key} {value!r}" for key, value in kept.items())}; set net.name '
            'and net.output_dir to choose', UserWarning, stacklevel=3)
    return {**state, 'config': {**config, **kept}} if kept else state


def net_state(net, weights=None):
    """The plain-data description of a net that :func:`~pydnn2.net.load` rebuilds
    (with ``weights``, a state dict, in place of the module's own)."""
    pre = net.preprocessor
    return {
        **header('net'),
        'config': {'channel': net.channel, 'num_classes': net.num_classes,
                   'batch_size': net.batch_size, 'activation': net.activation_name,
                   'name': net.name, 'output_dir': net.output_dir, 'seed': net.seed,
                   'initialization': net.initialization,
                   'memory_layout': _layout_record(net)},
        'calls': plain_tree(net.calls),
        'weights': {k: v.detach().cpu()
                    for k, v in (weights or net.module.state_dict()).items()},
        'preprocessor': {'class': type(pre).__name__,
                         'state': plain_tree(pre.state_dict())},
    }


def _layout_record(net):
    """The memory layout chosen for ``net`` by measurement, as plain data (or None)."""
    choice = getattr(net, 'memory_layout', None)
    return None if choice is None else choice.as_dict()


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


class BackgroundSaver:
    """Saves files in a background thread, one at a time and in order (formerly
    ``BackgroundWriter``: "writer" now means rank 0 only).

    The training loop hands it a snapshot (tensors it will not touch again)
    and goes on; a later :meth:`submit` or :meth:`wait` waits for the
    previous write and re-raises its error, if any.
    """

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='pydnn2-saver')
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
    """Load a pydnn2 file's dict safely, with clear errors for bad files.

    The file's checksum is verified (a mismatch is a :class:`FileFormatError`
    saying "checksum mismatch"); files written before checksums load unverified.
    """
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
    except Exception as exc:  # noqa: BLE001 - torch's readers raise many types on damaged bytes
        raise _corrupted(filename, exc) from None
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise FileFormatError(f'{filename!r} is not a pydnn2 file (no pydnn2 format marker)')
    version = state.get('format_version')
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FileFormatError(
            f'{filename!r} was written in pydnn2 file format {version!r} by pydnn2 '
            f'{state.get("pydnn2_version")}; this pydnn2 reads format {FORMAT_VERSION} and '
            'older: upgrade pydnn2 to load it')
    _verify(state, filename)
    if state.get('kind') != kind:
        raise FileFormatError(f'{filename!r} holds a pydnn2 {state.get("kind")!r}, '
                              f'not a {kind!r}')
    _verify_finite(state, kind, filename)
    return state


def __getattr__(name):
    """``BackgroundWriter``, the former name of :class:`BackgroundSaver`, with a
    DeprecationWarning (kept one release)."""
    if name == 'BackgroundWriter':
        warnings.warn('pydnn2.files.BackgroundWriter is now BackgroundSaver ("writer" means '
                      'rank 0); the old name goes in the next release', DeprecationWarning,
                      stacklevel=2)
        return BackgroundSaver
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
