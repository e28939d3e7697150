"""A sharded on-disk format: WebDataset tar shards, written once, read by index from any rank.

:func:`write_shards` writes a labelled set into a folder of tar files of
``per_shard`` samples each (``shard-000000.tar``, ...) and an ``index.json``
that lists them with their sample counts, as WebDataset's indexed reader
(``wids``) expects. Each sample is one row: ``<key>.<channel>.npy`` per
channel (a numpy array, or ``<key>.<channel>.jpg`` / ``.png`` for an
encoded image stored as it is) and ``<key>.cls`` (its class). The shards
are plain tar files: ``tar tf`` lists them, any WebDataset reader reads
them, and they can be copied, synced or served like any other file.

:class:`ShardDataset` reads them back as a map-style torch ``Dataset``:
``dataset[i]`` is ``({channel: array}, class)``, each sample read with one
``pread`` per member, never through a memory mapping, so that a process
holds only the rows it reads. Given to
:class:`~pydnn2.preprocess.DatasetPreprocessor`, the loop's own batch
sampler gives each rank its rows of every global batch, ``DataLoader``
workers read them, and a resumed epoch skips the batches already trained
(:mod:`pydnn2.preprocess.loader`). It also reads shards written by
WebDataset's own tools, given their index file or list of shards.

Writing needs the ``webdataset`` package (``pip install pydnn2[shards]``);
reading needs nothing beyond pydnn2's own requirements.

>>> import numpy as np, tempfile
>>> root = tempfile.mkdtemp()
>>> x, y = np.arange(5 * 4, dtype=np.float32).reshape(5, 1, 2, 2), np.array([0, 1, 0, 1, 2])
>>> write_shards(root, (x, y), per_shard=2)                         # doctest: +ELLIPSIS
'.../index.json'
>>> data = ShardDataset(root)
>>> len(data), data.num_shards, data[3][0]['images'].tolist(), data[3][1]
(5, 3, [[[12.0, 13.0], [14.0, 15.0]]], 1)
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Sequence

import numpy as np
import torch

from .. import checks, progress as progress_bars
from ..errors import ConfigError, DataError
from .reader import decode_image
from .tarfiles import TarIndex

INDEX = 'index.json'
PATTERN = 'shard-%06d.tar'
IMAGE_MEMBERS = ('jpg', 'jpeg', 'png', 'bmp', 'tif', 'tiff', 'gif', 'webp', 'ppm', 'pgm')
#: Shards a reader keeps open (their file and index) in each process.
OPEN_SHARDS = 64


def _items(data, channel):
    """The rows of ``data`` as ``({channel: value}, class)`` and how many there are."""
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], dict) \
            and hasattr(data[0], '__len__') and hasattr(data[1], '__len__'):
        x, y = data
        if len(x) != len(y):
            raise DataError(f'write_shards: {len(x)} rows of x but {len(y)} classes')
        return ((({channel: x[i]}, y[i]) for i in range(len(y))), len(y))
    if not hasattr(data, '__getitem__') or not hasattr(data, '__len__'):
        raise DataError('write_shards needs (x, y) arrays or a sequence of items (x, y) or '
                        f'({{channel: x}}, y) such as a map-style Dataset; received '
                        f'{type(data).__name__}')
    return ((data[i] for i in range(len(data))), len(data))


def _encode(value, channel, where):
    """``(member name, bytes)`` of one channel value: image bytes as they are, else .npy."""
    if isinstance(value, (bytes, bytearray)):
        kind = _image_kind(bytes(value), where)
        return f'{channel}.{kind}', bytes(value)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind not in 'biuf':
        raise DataError(f'{where}, channel {channel!r}: expected numbers or encoded image '
                        f'bytes; received dtype {value.dtype}')
    stream = io.BytesIO()
    np.save(stream, value, allow_pickle=False)
    return f'{channel}.npy', stream.getvalue()


def _image_kind(data, where):
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = (image.format or '').lower()
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f'{where}: bytes that are not an image Pillow can read ({exc})') \
            from None
    kind = {'jpeg': 'jpg', 'tiff': 'tif'}.get(kind, kind)
    if kind not in IMAGE_MEMBERS:
        raise DataError(f'{where}: images of format {kind!r} cannot be stored; expected one '
                        f'of {", ".join(IMAGE_MEMBERS)}')
    return kind


def _sample(item, key, channel, where):
    """The WebDataset sample (a dict of member bytes) of one item."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f'{where}: expected an item (x, y) or ({{channel: x}}, y); received '
                        f'{type(item).__name__}')
    x, y = item
    x = dict(x) if isinstance(x, dict) else {channel: x}
    sample = {'__key__': key}
    for name, value in x.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise DataError(f'{where}: channel names must be identifiers (no dots); '
                            f'received {name!r}')
        member, data = _encode(value, name, where)
        sample[member] = data
    try:
        label = int(torch.as_tensor(np.asarray(y)).item())
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f'{where}: expected one integer class; received {y!r}') from None
    if label < 0:
        raise DataError(f'{where} has class {label}; expected a class >= 0')
    sample['cls'] = str(label).encode()
    return sample


def write_shards(root: str | os.PathLike, data: Any, *, per_shard: int = 10_000,
                 channel: str = 'images', progress: bool | None = None) -> str:
    """Write a labelled set as WebDataset shards and their index; return the index's path.

    Parameters
    ----------
    root : str or os.PathLike
        An empty (or new) folder to write into.
    data : tuple of arrays, or a sequence of items
        ``(x, y)``: rows of ``x`` (any shape) and their integer classes; or a
        sequence (a map-style ``Dataset``, a list) of items ``(x, y)`` or
        ``({channel: x, ...}, y)``. A value may be an array or tensor (stored
        as ``.npy``) or the bytes of an encoded image (stored as they are,
        as ``.jpg``, ``.png``, ...; decoded when read).
    per_shard : int
        Samples per shard file.
    channel : str
        The channel name of an ``x`` that is not a dict.
    progress : bool, optional
        Show a progress bar (by default for 10,000 rows or more).

    Returns
    -------
    str
        The path of ``index.json``, which :class:`ShardDataset` opens.
    """
    try:
        import webdataset
    except ImportError:
        raise ConfigError('write_shards needs the webdataset package: pip install '
                          "'pydnn2[shards]'") from None
    per_shard = checks.integer(per_shard, 'per_shard', 1)
    root = os.fspath(root)
    if os.path.isdir(root) and os.listdir(root):
        raise ConfigError(f'write_shards writes into an empty folder; {root!r} holds '
                          f'{len(os.listdir(root))} entries')
    items, total = _items(data, channel)
    if total == 0:
        raise DataError('write_shards: the set is empty; it needs at least one row')
    os.makedirs(root, exist_ok=True)
    show = progress if progress is not None else total >= 10_000
    bar = progress_bars.progress_bar(total, 'writing shards', enabled=show, leave=True)
    try:
        with webdataset.ShardWriter(os.path.join(root, PATTERN), maxcount=per_shard,
                                    maxsize=float('inf'), mtime=0, verbose=0) as sink:
            for i, item in enumerate(items):   # mtime 0: no PAX header, reproducible files
                sink.write(_sample(item, f'{i:09d}', channel, f'item {i}'))
                bar.update(1)
        return _write_index(root, total, per_shard)
    except BaseException:
        for name in os.listdir(root):          # the folder was empty: all of it is ours
            os.remove(os.path.join(root, name))
        raise
    finally:
        bar.close()


def _write_index(root, total, per_shard):
    """Write ``index.json`` (WebDataset's wids layout) last, atomically."""
    count = -(-total // per_shard)
    written = sorted(n for n in os.listdir(root) if n.endswith('.tar'))
    assert written == [PATTERN % k for k in range(count)], written     # our own invariant
    shards = [{'url': PATTERN % k, 'nsamples': min(per_shard, total - k * per_shard),
               'filesize': os.path.getsize(os.path.join(root, PATTERN % k))}
              for k in range(count)]
    index = {'__kind__': 'wids-shard-index-v1', 'wids_version': 1, 'shardlist': shards}
    path = os.path.join(root, INDEX)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(index, f, indent=1)
    os.replace(path + '.tmp', path)
    return path


class ShardDataset(torch.utils.data.Dataset):
    """WebDataset shards as a map-style torch ``Dataset``: ``dataset[i]`` is
    ``({channel: array}, class)``.

    Parameters
    ----------
    source : str or os.PathLike or list
        A folder written by :func:`write_shards` (or holding an ``index.json``),
        an index file in WebDataset's ``wids`` layout (``{"shardlist": [{"url":
        ..., "nsamples": ...}, ...]}``; relative urls are found beside it), or a
        list of such ``{"url", "nsamples"}`` dicts.
    channels : sequence of str, optional
        The channels to read (default: every member but ``cls``).
    color : bool
        Decode encoded images as ``(3, H, W)`` RGB; by default ``(1, H, W)`` grey.
    image_size : (int, int), optional
        Resize decoded images to ``(height, width)`` (Pillow, bilinear), so that
        images of different sizes make one channel shape.

    Notes
    -----
    Each process (each ``DataLoader`` worker, each rank) opens the shards it
    reads itself, at most :data:`OPEN_SHARDS` at once, and scans a shard's
    headers the first time it reads from it (about 12 us a sample; a forked
    worker keeps the scans its parent made); nothing is read through a memory
    mapping, so a process holds only the rows it reads. Rows are numbered shard
    after shard in the order of the index.
    """

    def __init__(self, source: str | os.PathLike | list[dict[str, Any]], *,
                 channels: Sequence[str] | None = None, color: bool = False,
                 image_size: int | tuple[int, int] | None = None) -> None:
        self.shards, base = _shard_list(source)
        self.paths = [os.path.join(base, s['url']) if base is not None else s['url']
                      for s in self.shards]
        for path in self.paths:
            if not os.path.isfile(path):
                raise DataError(f'the shard {path!r} listed in the index does not exist')
        self.starts = np.cumsum([0] + [s['nsamples'] for s in self.shards])
        self.channels = None if channels is None else tuple(channels)
        self.color = bool(color)
        self.image_size = (None if image_size is None
                           else checks.pair(image_size, 'image_size', minimum=1))
        self._indexes: dict[int, Any] = {}     # shard -> its member index, read once
        self._files: dict[int, int] = {}       # shard -> its open descriptor (per process)
        self._pid: int | None = None

    @property
    def num_shards(self) -> int:
        """Shard files in the set."""
        return len(self.paths)

    def __len__(self):
        return int(self.starts[-1])

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f'ShardDataset index {index} is out of range 0 .. {len(self) - 1}')
        shard = int(np.searchsorted(self.starts, index, side='right')) - 1
        tar, fd = self._shard(shard)
        local = int(index - self.starts[shard])
        where = f'{self.paths[shard]}, sample {tar.key(local)!r} (row {index})'
        return self._decode(tar.read(local, fd), where)

    def _shard(self, shard):
        """The index and an open file of shard ``shard`` in this process (a forked worker
        keeps the indexes it inherits and opens its own files)."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if shard not in self._indexes:
            self._indexes[shard] = self._index(shard)
        if shard not in self._files:
            if len(self._files) >= OPEN_SHARDS:
                os.close(self._files.pop(next(iter(self._files))))    # the oldest
            self._files[shard] = os.open(self.paths[shard], os.O_RDONLY)
        return self._indexes[shard], self._files[shard]

    def _index(self, shard):
        tar = TarIndex(self.paths[shard])
        if len(tar) != self.shards[shard]['nsamples']:
            raise DataError(f'the shard {self.paths[shard]!r} holds {len(tar)} samples; '
                            f'its index says {self.shards[shard]["nsamples"]}')
        return tar

    def _decode(self, members, where):
        """``({channel: array}, class)`` of one sample's member bytes."""
        if 'cls' not in members:
            raise DataError(f'{where} has no class (a .cls member); it has {sorted(members)}')
        x = {}
        for member, data in members.items():
            name, _, kind = member.partition('.')
            kind = kind or name                       # a member without a type: 'txt', 'json'
            if member == 'cls' or (self.channels is not None and name not in self.channels):
                continue
            x[name] = self._value(kind, data, f'{where}, member {member!r}')
        if self.channels is not None and set(x) != set(self.channels):
            raise DataError(f'{where} has channels {sorted(x)}; expected {list(self.channels)}')
        try:
            label = int(members['cls'])
        except ValueError:
            raise DataError(f'{where}: its class {members["cls"][:20]!r} is not an '
                            'integer') from None
        return x, label

    def _value(self, kind, data, where):
        if kind == 'npy':
            try:
                return np.load(io.BytesIO(data), allow_pickle=False)
            except ValueError as exc:
                raise DataError(f'{where} is not a plain numpy array: {exc}') from None
        if kind.lower() in IMAGE_MEMBERS:
            image = decode_image(data, self.color, where)
            if self.image_size is not None:
                image = _resize(image, self.image_size)
            image = image if image.flags.writeable else image.copy()   # torch wants writable
            return image if image.ndim == 3 else image[None]       # (H, W) -> (1, H, W)
        raise DataError(f'{where}: cannot read members of type {kind!r}; expected .npy or '
                        f'an image ({", ".join(IMAGE_MEMBERS)}); choose channels= to skip it')

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_files'], state['_pid'] = {}, None         # files are opened per process
        return state

    def __del__(self):
        if getattr(self, '_pid', None) == os.getpid():
            for fd in self._files.values():
                os.close(fd)


def _resize(image, size):
    """A uint8 image ``(H, W)`` or ``(3, H, W)`` resized to ``size`` (height, width)."""
    from PIL import Image
    planes = image if image.ndim == 3 else image[None]
    out = [np.asarray(Image.fromarray(p).resize(size[::-1], Image.Resampling.BILINEAR))
           for p in planes]
    return np.stack(out) if image.ndim == 3 else out[0]


def _shard_list(source):
    """``(shards, base folder)`` of a folder, an index file or a list of shards."""
    if isinstance(source, (list, tuple)):
        shards, base = list(source), None
    else:
        path = os.fspath(source)
        if os.path.isdir(path):
            path = os.path.join(path, INDEX)
        try:
            with open(path, encoding='utf-8') as f:
                shards = json.load(f).get('shardlist')
        except FileNotFoundError:
            raise DataError(f'no shard index at {path!r}; write_shards writes one') from None
        except (ValueError, AttributeError) as exc:
            raise DataError(f'{path!r} is not a shard index (JSON with a "shardlist"): '
                            f'{exc}') from None
        base = os.path.dirname(os.path.abspath(path))
    if not isinstance(shards, list) or not shards or not all(
            isinstance(s, dict) and isinstance(s.get('url'), str)
            and isinstance(s.get('nsamples'), int) and s['nsamples'] >= 0 for s in shards):
        raise DataError('a shard list must be a non-empty list of {"url": path, "nsamples": '
                        f'count}} entries; received {str(shards)[:120]}')
    return shards, base
