"""A cache on disk of a streamed set's decoded images, so that every epoch after the
first reads small uint8 rows instead of decoding and resizing files.

A streamed image preprocessor given ``decode_cache=FOLDER`` keeps, for each set it
serves, two files in FOLDER: the images as the workers made them (uint8
``(C, H, W)`` rows, one per file, in the set's order) and a tag per row (the row's
CRC-32, marked present). A worker reads a row whose tag matches its bytes, else
decodes the file as it would without the cache and writes the row, then its tag.
So a pass serves exactly the images an uncached pass serves; a row written in part
(a process killed mid-write) fails its check and is decoded again; and ranks or
machines sharing the folder write the same bytes to the same rows.

The files' names hash everything that makes a row: the paths in order, each
file's size and modification time, and how images are prepared (resizer, shape,
channels, canonical turn). A changed file or setting gives new cache files; the
old ones stay until the user deletes the folder, which is always safe. The cache
takes ``C x H x W`` bytes per image (4 KiB at 64x64 grey) and is only written
where the rows are read.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zlib

import numpy as np

from ..errors import ConfigError
from .resize import Resizer

#: Bumped when a row's layout or the key changes, so that old files are not read.
FORMAT = 1
#: Set in every tag of a written row, so that a hole (zeros) reads as absent.
PRESENT = 1 << 32
TAG_BYTES = 8


def cache_key(files, preparation, channels):
    """The hex digest naming the cache of ``files`` made ready by ``preparation``."""
    digest = hashlib.sha256(f'{FORMAT}|{preparation!r}|{channels}'.encode())
    for i in range(len(files)):
        path = files.path(i)
        try:
            found = os.stat(path)
            digest.update(f'\0{path}\0{found.st_size}\0{found.st_mtime_ns}'.encode())
        except OSError:                  # read (and its DataError) will name it
            digest.update(f'\0{path}\0missing'.encode())
    return digest.hexdigest()[:24]


class DecodedCache:
    """The decoded rows of one set of files (see the module).

    Parameters
    ----------
    folder : str or os.PathLike
        Where the cache files live (made if missing).
    files : pydnn2.data.ImageFiles
    preparation : pydnn2.preprocess.streaming.Preparation
    channels : int
        Channels of each image (1 grey, 3 colour).
    """

    def __init__(self, folder, files, preparation, channels):
        if preparation.training and type(preparation.resizer).training is not Resizer.training:
            raise ConfigError(f'decode_cache: {type(preparation.resizer).__name__} resizes '
                              f'training images its own way (perhaps at random), so a '
                              f'decoded image cannot be kept; leave decode_cache unset')
        self.shape = (int(channels),) + tuple(preparation.image_shape)
        self.row_bytes = int(np.prod(self.shape))
        key = cache_key(files, preparation, channels)
        base = os.path.join(os.fspath(folder), f'decoded-{key}')
        self.data_path, self.tag_path = base + '.u8', base + '.tags'
        try:
            os.makedirs(folder, exist_ok=True)
            for path, size in ((self.data_path, len(files) * self.row_bytes),
                               (self.tag_path, len(files) * TAG_BYTES)):
                with open(path, 'ab') as f:          # made when missing, never cut
                    if f.tell() != size:
                        f.truncate(size)
        except OSError as exc:
            raise ConfigError(f'decode_cache: cannot use the folder {os.fspath(folder)!r} '
                              f'({exc})') from None
        self._fds = None                             # (pid, data fd, tag fd), per process
        self._unwritable = None                      # the pid that could not write

    def __getstate__(self):
        return {**self.__dict__, '_fds': None}      # a worker opens its own

    def __del__(self):
        fds = getattr(self, '_fds', None)
        if fds is not None and fds[0] == os.getpid():
            for fd in fds[1:]:
                os.close(fd)

    def _open(self):
        if self._fds is None or self._fds[0] != os.getpid():
            self._fds = (os.getpid(), os.open(self.data_path, os.O_RDWR),
                         os.open(self.tag_path, os.O_RDWR))
        return self._fds[1], self._fds[2]

    def get(self, i):
        """Row ``i`` (uint8 ``(C, H, W)``) when it was written whole, else None (also when
        the cache cannot be read: the file is decoded instead)."""
        try:
            data, tags = self._open()
            tag = int.from_bytes(os.pread(tags, TAG_BYTES, i * TAG_BYTES), 'little')
            if not tag & PRESENT:
                return None
            row = bytearray(self.row_bytes)
            if os.preadv(data, [row], i * self.row_bytes) != self.row_bytes \
                    or zlib.crc32(row) | PRESENT != tag:
                return None
        except OSError:
            return None
        return np.frombuffer(row, np.uint8).reshape(self.shape)

    def put(self, i, image):
        """Write row ``i``, then its tag. A cache that cannot be written (a full disk)
        is left alone with one warning per process: it only saves work."""
        if self._unwritable == os.getpid():
            return
        row = np.ascontiguousarray(image, np.uint8).reshape(self.shape).tobytes()
        try:
            data, tags = self._open()
            os.pwrite(data, row, i * self.row_bytes)
            os.pwrite(tags, (zlib.crc32(row) | PRESENT).to_bytes(TAG_BYTES, 'little'),
                      i * TAG_BYTES)
        except OSError as exc:
            self._unwritable = os.getpid()
            warnings.warn(f'decode_cache: cannot write {self.data_path!r} ({exc}); this '
                          f'process reads the image files instead', stacklevel=2)

