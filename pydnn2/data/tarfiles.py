"""Random access into a tar file by ``pread``: the members of WebDataset shards.

A WebDataset shard is a plain tar file whose members are grouped into
samples by key: ``000123.images.npy`` and ``000123.cls`` are the members
``images.npy`` and ``cls`` of sample ``000123`` (the key is the name up to
the first dot of its last path component). :class:`TarIndex` scans a shard's
headers once, with ``pread`` and never through a memory mapping (a mapping
makes the pages around every touched sample resident, so a rank reading
half the rows at random would hold the whole file), and then reads any
sample's members with one ``pread`` each.

>>> import io, os, tarfile, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'shard.tar')
>>> with tarfile.open(path, 'w', format=tarfile.USTAR_FORMAT) as tar:
...     for name, data in [('a.x.npy', b'12'), ('a.cls', b'3'), ('b.cls', b'4')]:
...         info = tarfile.TarInfo(name)
...         info.size = len(data)
...         tar.addfile(info, io.BytesIO(data))
>>> index = TarIndex(path)
>>> len(index), index.key(1), index.read(0, os.open(path, os.O_RDONLY))
(2, 'b', {'x.npy': b'12', 'cls': b'3'})
"""

import os

from ..errors import DataError

BLOCK = 512
REGULAR = (b'0', b'\x00', b'7')      # regular files (7: contiguous)
LONG_NAME = (b'L',)                  # GNU long name for the next member
PAX = (b'x',)                        # PAX extended header for the next member
SKIPPED = (b'g', b'5', b'1', b'2', b'3', b'4', b'6', b'K')    # global headers, folders, links


def _number(field, where):
    """A tar header's octal (or base-256) number."""
    if field[:1] in (b'\x80', b'\xff'):                       # base-256 (GNU, large sizes)
        return int.from_bytes(field[1:], 'big', signed=field[:1] == b'\xff')
    text = field.rstrip(b'\x00 ').strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise DataError(f'{where}: not a tar file (a header has size field {field!r})') from None


def _pax_path(data):
    """The ``path`` record of a PAX extended header, if it has one."""
    for record in data.split(b'\n'):
        _, _, entry = record.partition(b' ')
        key, _, value = entry.partition(b'=')
        if key == b'path':
            return value.decode('utf-8')
    return None


def scan(fd, where):
    """``[(name, offset, size)]`` of the regular members of the tar file open as ``fd``."""
    members, offset, name = [], 0, None
    end = os.fstat(fd).st_size
    while offset + BLOCK <= end:
        header = os.pread(fd, BLOCK, offset)
        if header == bytes(BLOCK):                            # the end-of-archive blocks
            break
        size = _number(header[124:136], where)
        kind = header[156:157]
        data_at = offset + BLOCK
        offset = data_at + -(-size // BLOCK) * BLOCK
        if kind in LONG_NAME:
            name = os.pread(fd, size, data_at).rstrip(b'\x00').decode('utf-8')
        elif kind in PAX:
            name = _pax_path(os.pread(fd, size, data_at)) or name
        elif kind in REGULAR:
            if name is None:
                prefix = header[345:500].rstrip(b'\x00').decode('utf-8')
                name = header[:100].rstrip(b'\x00').decode('utf-8')
                name = f'{prefix}/{name}' if prefix and header[257:262] == b'ustar' else name
            members.append((name, data_at, size))
            name = None
        elif kind in SKIPPED:
            name = None
        else:
            raise DataError(f'{where}: unknown tar member type {kind!r} at byte {offset}')
    return members


def split_name(name):
    """``(key, member)`` of a WebDataset file name: the key ends at the first dot of
    the last path component."""
    folder, _, base = name.rpartition('/')
    stem, dot, member = base.partition('.')
    if not dot:
        return None
    return (f'{folder}/{stem}' if folder else stem), member


class TarIndex:
    """The samples of one WebDataset shard: their keys and where their members lie.

    Parameters
    ----------
    path : str
        The tar file.
    """

    def __init__(self, path):
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise DataError(f'cannot open the shard {path!r}: {exc.strerror}') from None
        try:
            members = scan(fd, f'the shard {path!r}')
        finally:
            os.close(fd)
        self._keys, self._members = [], []
        for name, offset, size in members:
            split = split_name(name)
            if split is None:
                continue                                      # no extension: not a member
            key, member = split
            if not self._keys or self._keys[-1] != key:
                self._keys.append(key)
                self._members.append({})
            self._members[-1][member] = (offset, size)

    def __len__(self):
        return len(self._keys)

    def key(self, i):
        """The key of sample ``i``."""
        return self._keys[i]

    def read(self, i, fd):
        """``{member: bytes}`` of sample ``i``, read from ``fd`` (this shard, open)."""
        return {member: os.pread(fd, size, offset)
                for member, (offset, size) in self._members[i].items()}
