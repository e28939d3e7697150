"""Files that prove their integrity, never steer, and fail clearly (issue 11, items 8-11).

- every file pydnn2 writes carries a SHA-256 checksum of its contents; flipped
  bytes inside a weight tensor are a ``FileFormatError`` saying "checksum
  mismatch", and ``resume=True`` passes over a damaged newest checkpoint;
- a loaded file's name and output folder cannot make pydnn2 write elsewhere,
  and its recorded calls can name only builder methods;
- a full disk, a folder as the target, a symlink and a file's mode are
  handled when writing; a device the machine lacks is a ``ConfigError``.
"""

import errno
import os
import re
import stat
import struct
import warnings
import zipfile

import numpy as np
import pytest
import torch

from pydnn2 import files
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, FileFormatError, FileWriteError, Pydnn2Error
from pydnn2.net import NN
from pydnn2.train import checkpoints


def tensor_entries(path):
    """The ``(name, offset, size)`` of each tensor's bytes inside a ``torch.save`` zip."""
    data = open(path, 'rb').read()
    found = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if '/data/' in info.filename and info.file_size:
                offset = info.header_offset
                name_length, extra_length = struct.unpack('<HH', data[offset + 26:offset + 30])
                found.append((info.filename, offset + 30 + name_length + extra_length,
                              info.file_size))
    return found


def flip_exponents(path, count=10):
    """Flip a bit in the exponent byte of ``count`` float32 values of the largest tensor,
    in place, leaving the zip's structure alone (torch does not check its CRCs)."""
    _, start, size = max(tensor_entries(path), key=lambda entry: entry[2])
    data = bytearray(open(path, 'rb').read())
    for k in range(min(count, size // 4)):
        data[start + 4 * k + 3] ^= 0x40
    open(path, 'wb').write(bytes(data))


def rewrite(path, change, seal=True):
    """Load a saved file's dict, ``change(state)``, save it again (sealed again unless
    ``seal=False``, so that only the change differs)."""
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(files.sealed(state) if seal else state, path)
    return path


@pytest.fixture
def trained(small_net, tmp_path):
    """A net trained 2 + 1 epochs with a checkpoint every epoch: every kind of file."""
    net = small_net(name='run')
    net.train(nn.Adam(learning_rate=0.01), epochs=2, final_epochs=1, checkpoint_every=1,
              keep_checkpoints=5, verbose=False, progress=False)
    return net


# -- item 8: checksums ----------------------------------------------------------------------

def test_every_file_pydnn2_writes_carries_a_sha256_of_its_contents(trained, tmp_path):
    saved = files.save(trained, tmp_path / 'saved.pt')
    written = [saved, *checkpoints.list_checkpoints(trained),
               tmp_path / 'run_best_net.pt', tmp_path / 'run_final_net.pt']
    assert len(written) == 6
    for path in written:
        state = torch.load(path, weights_only=True)
        assert state['checksum'] == {'sha256': files.digest(state)}, path


def test_the_checksum_covers_tensor_bytes_and_plain_data(small_net):
    state = files.net_state(small_net())
    key = next(iter(state['weights']))
    changed = dict(state, weights={**state['weights'], key: state['weights'][key] + 1e-7})
    assert files.digest(changed) != files.digest(state)
    assert files.digest(dict(state, config={**state['config'], 'seed': 1})) != files.digest(state)
    assert files.digest(files.sealed(state)) == files.digest(state)   # the checksum is left out


def test_flipped_bytes_in_a_weight_tensor_are_a_checksum_mismatch(small_net, tmp_path):
    path = files.save(small_net(), tmp_path / 'net.pt')
    flip_exponents(path)
    torch.load(path, weights_only=True)        # torch itself reads the damaged file quietly
    with pytest.raises(FileFormatError, match='checksum mismatch') as info:
        nn.load(path)
    assert str(path) in str(info.value)


def test_a_damaged_checkpoint_is_a_checksum_mismatch_for_load_and_resume(trained, small_net,
                                                                         tmp_path):
    path = checkpoints.list_checkpoints(trained)[0]
    flip_exponents(path)
    with pytest.raises(FileFormatError, match='checksum mismatch'):
        nn.load_checkpoint(path)
    with pytest.raises(FileFormatError, match='checksum mismatch'):
        small_net(name='run').train(nn.Adam(learning_rate=0.01), epochs=3, resume=path,
                                    verbose=False, progress=False)


def test_files_written_before_checksums_still_load(small_net, tmp_path):
    net = small_net()
    path = rewrite(files.save(net, tmp_path / 'old.pt'), lambda s: s.pop('checksum'),
                   seal=False)
    assert 'checksum' not in torch.load(path, weights_only=True)
    assert nn.load(path).calls == net.calls


def test_a_damaged_checksum_record_is_refused(small_net, tmp_path):
    path = rewrite(files.save(small_net(), tmp_path / 'net.pt'),
                   lambda s: s.update(checksum='nonsense'), seal=False)
    with pytest.raises(FileFormatError, match='checksum'):
        nn.load(path)


def test_resume_passes_over_a_damaged_newest_checkpoint_with_a_warning(trained, small_net,
                                                                       tmp_path):
    first, second = checkpoints.list_checkpoints(trained)[:2]
    for path in checkpoints.list_checkpoints(trained)[2:]:
        os.remove(path)                               # the final phase's checkpoint
    flip_exponents(second)
    with pytest.warns(UserWarning, match='checksum mismatch') as caught:
        assert checkpoints.newest_state(trained)[0] == first
    assert os.path.basename(second) in str(caught[0].message)
    net = small_net(name='run')
    with pytest.warns(UserWarning, match='damaged checkpoint'):
        history = net.train(nn.Adam(learning_rate=0.01), epochs=2, resume=True,
                            verbose=False, progress=False)
    assert len(history['train_loss']) == 2            # epoch 1 from the file, epoch 2 again
    assert np.isfinite(history['train_loss']).all()


def test_resume_with_every_checkpoint_damaged_says_so(trained):
    for path in checkpoints.list_checkpoints(trained):
        flip_exponents(path)
    with pytest.warns(UserWarning), pytest.raises(FileFormatError, match='no intact checkpoint'):
        checkpoints.newest_state(trained)


# -- item 9: a file never chooses where pydnn2 writes, or what runs -------------------------

@pytest.mark.parametrize('name', ['../../x', 'a/b', '..', 'a\\b'])
def test_a_name_that_is_a_path_is_dropped_with_a_warning(small_net, tmp_path, monkeypatch,
                                                          name):
    monkeypatch.chdir(tmp_path)
    path = rewrite(files.save(small_net(output_dir=''), tmp_path / 'net.pt'),
                   lambda s: s['config'].update(name=name))
    with pytest.warns(UserWarning, match='never chooses where pydnn2 writes'):
        loaded = nn.load(path)
    assert loaded.name == 'net'
    assert os.path.abspath(files.save(loaded)) == str(tmp_path / 'net.pt')


@pytest.mark.parametrize('folder', ['../elsewhere', 'runs/../../up', 'C:\\runs', '\\\\server\\x'])
def test_an_output_dir_that_climbs_out_is_dropped_with_a_warning(small_net, tmp_path, folder):
    path = rewrite(files.save(small_net(), tmp_path / 'net.pt'),
                   lambda s: s['config'].update(output_dir=folder))
    with pytest.warns(UserWarning, match=re.escape(f'output_dir {folder!r}')):
        loaded = nn.load(path)
    assert loaded.output_dir == ''


def test_an_absolute_output_dir_is_dropped_quietly(small_net, tmp_path, monkeypatch):
    """``nn.save(nn.load(f))`` no longer writes into the folder the file came from."""
    other = tmp_path / 'other'
    path = files.save(small_net(output_dir=str(other)), tmp_path / 'net.pt')
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loaded = nn.load(path)
    assert loaded.output_dir == ''
    assert os.path.abspath(files.save(loaded)) == str(tmp_path / 'net.pt')
    assert not other.exists()


def test_a_relative_output_dir_and_a_plain_name_are_kept(small_net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = small_net(name='digits', output_dir=os.path.join('runs', 'a'))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loaded = nn.load(files.save(net))
    assert (loaded.name, loaded.output_dir) == ('digits', os.path.join('runs', 'a'))


def test_a_checkpoints_net_is_trusted_the_same_way(trained, tmp_path):
    path = rewrite(checkpoints.list_checkpoints(trained)[0],
                   lambda s: s['net']['config'].update(name='../../x'))
    with pytest.warns(UserWarning, match='never chooses'):
        assert nn.load_checkpoint(path).name == 'net'


@pytest.mark.parametrize('method', ['net_size', 'bogus', '__init__', 'train', 'save', 7, None,
                                    ['add_hidden']])
def test_recorded_calls_can_name_only_builder_methods(small_net, tmp_path, monkeypatch, method):
    ran = []
    monkeypatch.setattr(NN, 'net_size', lambda self, **o: ran.append('net_size'))
    monkeypatch.setattr(NN, 'train', lambda self, *a, **o: ran.append('train'))
    path = rewrite(files.save(small_net(), tmp_path / 'net.pt'),
                   lambda s: s['calls'].insert(1, {'pathway': 0, 'method': method,
                                                   'args': {}}))
    with pytest.raises(FileFormatError, match='not a builder method'):
        nn.load(path)
    assert ran == []


@pytest.mark.parametrize('damage', [
    lambda s: s['calls'][0].update(args=[4]),
    lambda s: s['calls'].__setitem__(0, 'add_hidden'),
    lambda s: s['calls'][0].update(pathway=9),
    lambda s: s['calls'][0].pop('args'),
    lambda s: s['config'].__setitem__('initialization', 3),
    lambda s: s['preprocessor'].update(state=[1, 2]),
    lambda s: s['preprocessor'].update({'class': 7}),
    lambda s: s.update(config=[1]),
    lambda s: s.update(weights=None),
])
def test_crafted_contents_are_a_file_format_error_never_a_raw_one(small_net, tmp_path,
                                                                  damage):
    path = rewrite(files.save(small_net(), tmp_path / 'net.pt'), damage)
    with pytest.raises(FileFormatError, match='damaged'):
        nn.load(path)


# -- items 10 and 11: writing ---------------------------------------------------------------

class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


@pytest.mark.parametrize('where', ['write', 'fsync'])
def test_a_full_disk_says_no_space_left_and_names_the_file(small_net, tmp_path, monkeypatch,
                                                           where):
    net = small_net()
    path = files.save(net, tmp_path / 'keep.pt')
    before = open(path, 'rb').read()
    if where == 'write':
        real = os.fdopen
        monkeypatch.setattr(files.os, 'fdopen', lambda fd, mode: FullDisk(real(fd, mode), 1000))
    else:
        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(files.os, 'fsync', full)
    with pytest.raises(FileWriteError, match='no space left on device') as info:
        files.save(net, path)
    monkeypatch.undo()
    assert str(path) in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, Pydnn2Error)
    assert info.value.errno == errno.ENOSPC
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['keep.pt']


def test_a_full_disk_during_training_stops_it_with_the_file_named(small_net, tmp_path,
                                                                  monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(files.os, 'fdopen', lambda fd, mode: FullDisk(real(fd, mode), 100))
    with pytest.raises(FileWriteError, match="no space left on device") as info:
        small_net(name='full').train(nn.Adam(learning_rate=0.01), epochs=1, checkpoint_every=1,
                                     verbose=False, progress=False)
    assert str(tmp_path / 'full_') in str(info.value)


def test_saving_to_a_folder_is_a_config_error(small_net, tmp_path):
    with pytest.raises(ConfigError, match='is a folder') as info:
        files.save(small_net(), tmp_path)
    assert str(tmp_path) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_saving_over_a_symlink_writes_through_to_its_target(small_net, tmp_path):
    target = tmp_path / 'store' / 'net.pt'
    target.parent.mkdir()
    target.write_bytes(b'old')
    link = tmp_path / 'link.pt'
    link.symlink_to(target)
    net = small_net()
    files.save(net, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert nn.load(target).calls == net.calls
    assert sorted(os.listdir(target.parent)) == ['net.pt']


def test_saving_over_a_file_keeps_its_mode(small_net, tmp_path):
    path = tmp_path / 'shared.pt'
    path.write_bytes(b'old')
    os.chmod(path, 0o640)
    files.save(small_net(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_new_file_gets_the_mode_open_would_give_it(small_net, tmp_path):
    old = os.umask(0o027)
    try:
        path = files.save(small_net(), tmp_path / 'new.pt')
        plain = tmp_path / 'plain'
        plain.write_bytes(b'')
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 == stat.S_IMODE(os.stat(plain).st_mode)


@pytest.mark.parametrize('device', ['cuda', 'cuda:0', torch.device('cuda')])
def test_loading_onto_a_missing_gpu_is_a_config_error_naming_it(small_net, tmp_path,
                                                                  monkeypatch, device):
    path = files.save(small_net(), tmp_path / 'net.pt')
    checkpoint = files.atomic_save({**files.header('checkpoint'), 'net': torch.load(
        path, weights_only=True)}, tmp_path / 'net_checkpoint_0001.pt')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for loader, file in ((nn.load, path), (nn.load_checkpoint, checkpoint)):
        with pytest.raises(ConfigError, match="device 'cuda(:0)?' is not available"):
            loader(file, device=device)


def test_an_unknown_device_is_a_config_error(small_net, tmp_path):
    path = files.save(small_net(), tmp_path / 'net.pt')
    with pytest.raises(ConfigError, match="device must be a torch device.*'toaster'"):
        nn.load(path, device='toaster')
