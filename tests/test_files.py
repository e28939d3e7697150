"""Tests of pydnn2.files (and NN.from_state / load): the round trip, the file's contents,
refusing bad files, atomic writes.

The oracle for a round trip is the original net: the loaded one must predict
the same classes and probabilities and show the same layer table.
"""

import os
import shlex

import numpy as np
import pytest
import torch

import pydnn2
from pydnn2 import files
from pydnn2 import neuralnet as nn
from pydnn2.errors import FileFormatError
from pydnn2.train.rules import Adam
from pydnn2.preprocess import split_training_data


def build_prelu(net):
    net.add_convolution(4, (3, 3), (2, 2), activation=pydnn2.prelu)
    net.add_dropout(0.25)
    net.add_hidden(12, activation=pydnn2.tanh, batch_normalize=False)
    net.add_logistic()


def build_pathways(net):
    other = net.split_pathways()
    net.add_convolution(4, (3, 3), (1, 1))                      # (4, 6, 6)
    other.add_conv_pool(3, (3, 3), (1, 1))                      # (3, 6, 6)
    other.add_nonlinearity(pydnn2.sigmoid)
    net.merge_pathways(other)                                   # (7, 6, 6)
    net.add_mlp(10)


BUILDS = {'conv': None, 'prelu': build_prelu, 'pathways': build_pathways}


@pytest.fixture(scope='module')
def trained(net_maker, digits_cached, tmp_path_factory):
    """``trained(build)``: a small net of that build trained for one epoch, made once per
    module (tests only save it and predict with it)."""
    cache = {}

    def get(build='conv'):
        if build not in cache:
            sets = split_training_data(digits_cached, 32, 60, 20, 20)
            net = net_maker(sets, tmp_path_factory.mktemp(f'trained-{build}'), BUILDS[build])
            net.train(Adam(learning_rate=0.01), epochs=1, verbose=False, progress=False)
            cache[build] = net
        return cache[build]

    return get


def test_files_written_by_save_are_plain_weights_only_data(trained, tmp_path):
    net = trained()
    path = files.save(net, tmp_path / 'plain.pt')
    state = torch.load(path, weights_only=True)
    assert state['format'] == 'pydnn2'
    assert state['format_version'] == files.FORMAT_VERSION
    assert isinstance(state['format_version'], int)
    assert state['pydnn2_version'] == pydnn2.__version__
    assert state['torch_version'] == str(torch.__version__)
    assert state['preprocessor']['class'] == 'ArrayPreprocessor'
    assert set(state['weights']) == set(net.module.state_dict())


@pytest.mark.parametrize('build', sorted(BUILDS))
def test_round_trip_predicts_identically(trained, tmp_path, build):
    net = trained(build)
    test_x = net.preprocessor.get_raw_x()[2]
    classes, probabilities = net.predict(test_x)
    loaded = nn.load(files.save(net, tmp_path / 'round.pt'))
    again, again_probabilities = loaded.predict(test_x)
    np.testing.assert_array_equal(again, classes)
    np.testing.assert_allclose(again_probabilities, probabilities, rtol=1e-6, atol=1e-7)
    assert loaded.layer_table() == net.layer_table()
    assert loaded.calls == net.calls
    for key, value in net.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value), key


def test_round_trip_is_not_vacuous(trained, small_net):
    """The same layers freshly built (same seed, untrained) predict differently from the
    trained net, so equal predictions after loading come from the saved weights."""
    net = trained()
    test_x = net.preprocessor.get_raw_x()[2]
    _, probabilities = net.predict(test_x)
    _, fresh_probabilities = small_net(build=BUILDS['conv']).predict(test_x)
    assert not np.allclose(fresh_probabilities, probabilities, atol=1e-3)


def test_loaded_net_keeps_the_config(small_net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)             # a relative output_dir (an absolute one is dropped)
    net = small_net(name='digits', activation=pydnn2.tanh, output_dir='runs')
    loaded = nn.load(files.save(net))
    for attribute in ('name', 'channel', 'num_classes', 'batch_size', 'activation_name',
                      'output_dir', 'seed'):
        assert getattr(loaded, attribute) == getattr(net, attribute), attribute
    assert not loaded.preprocessor.has_data()


def test_default_filename_is_output_dir_slash_name_dot_pt(small_net, tmp_path):
    net = small_net(name='digits')
    path = files.save(net)
    assert os.path.abspath(path) == os.path.abspath(tmp_path / 'digits.pt')
    assert os.path.isfile(tmp_path / 'digits.pt')


def test_default_filename_with_empty_output_dir_is_in_the_working_directory(
        small_net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = small_net(name='here', output_dir='')
    path = files.save(net)
    assert os.path.abspath(path) == str(tmp_path / 'here.pt')
    assert nn.load('here.pt').layer_table() == net.layer_table()


def test_save_replaces_an_existing_file_and_leaves_no_temporary_files(small_net, tmp_path):
    net = small_net()
    path = tmp_path / 'net.pt'
    path.write_bytes(b'old contents')
    files.save(net, path)
    assert nn.load(path).layer_table() == net.layer_table()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert not [name for name in leftovers if name.endswith('.tmp')], leftovers
    assert 'net.pt' in leftovers


def test_atomic_save_creates_missing_folders(tmp_path):
    target = tmp_path / 'a' / 'b' / 'x.pt'
    files.atomic_save({'v': torch.arange(3)}, target)
    assert torch.equal(torch.load(target, weights_only=True)['v'], torch.arange(3))
    assert os.listdir(target.parent) == ['x.pt']


@pytest.mark.parametrize('error', [RuntimeError('disk full'), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_previous_file_intact(small_net, tmp_path, monkeypatch,
                                                       error):
    net = small_net()
    path = tmp_path / 'keep.pt'
    files.save(net, path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 half a file')            # some partial data, then failure
        raise error

    monkeypatch.setattr(files.torch, 'save', broken_save)
    with pytest.raises(type(error)):
        files.save(net, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ['keep.pt']
    assert nn.load(path).layer_table() == net.layer_table()


# -- refusing bad files --------------------------------------------------------------------

class MakesMarker:
    """Unpickling this object runs ``function(*args)`` (the classic pickle payload)."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker):
    return {'os.system': MakesMarker(os.system, (f'touch {shlex.quote(str(marker))}',)),
            'open': MakesMarker(open, (str(marker), 'w'))}


@pytest.mark.parametrize('kind', ['os.system', 'open'])
def test_the_payload_is_live(tmp_path, kind):
    """Control for the test below: loaded unsafely, the payload does create the marker."""
    marker = tmp_path / 'marker'
    torch.save({'x': payloads(marker)[kind]}, tmp_path / 'evil.pt')
    assert not marker.exists()
    torch.load(tmp_path / 'evil.pt', weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('kind', ['os.system', 'open'])
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, kind):
    marker = tmp_path / 'marker'
    evil = tmp_path / 'evil.pt'
    torch.save({'format': 'pydnn2', 'format_version': 1, 'kind': 'net',
                'weights': payloads(marker)[kind]}, evil)
    with pytest.raises(FileFormatError) as info:
        nn.load(evil)
    assert str(evil) in str(info.value)
    assert 'code' in str(info.value)
    assert not marker.exists()


def test_a_truncated_file_is_reported(small_net, tmp_path):
    whole = tmp_path / 'whole.pt'
    files.save(small_net(), whole)
    data = whole.read_bytes()
    half = tmp_path / 'half.pt'
    half.write_bytes(data[:len(data) // 2])
    with pytest.raises(FileFormatError, match='truncated or corrupted') as info:
        nn.load(half)
    assert str(half) in str(info.value)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / 'noise.pt'
    path.write_bytes(np.random.RandomState(0).bytes(2000))
    with pytest.raises(FileFormatError, match='noise.pt'):
        nn.load(path)


def test_any_random_bytes_are_refused_with_a_file_format_error(tmp_path):
    path = tmp_path / 'noise.pt'
    escaped = []
    for seed in range(40):
        path.write_bytes(np.random.RandomState(seed).bytes(2000))
        try:
            nn.load(path)
        except FileFormatError:
            continue
        except Exception as error:  # noqa: BLE001 - collect what escapes
            escaped.append((seed, type(error).__name__))
    assert escaped == []


def test_random_bytes_are_called_corrupted_not_dangerous(tmp_path):
    path = tmp_path / 'noise.pt'
    path.write_bytes(np.random.RandomState(0).bytes(2000))
    with pytest.raises(FileFormatError) as info:
        nn.load(path)
    assert 'run code' not in str(info.value)
    assert 'corrupted' in str(info.value)


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / 'empty.pt'
    path.write_bytes(b'')
    with pytest.raises(FileFormatError, match='empty.pt'):
        nn.load(path)


@pytest.mark.parametrize('content', [{'a': 1}, [1, 2, 3], torch.zeros(3),
                                     {'format': 'keras', 'format_version': 1}])
def test_a_foreign_torch_file_is_not_a_pydnn2_file(tmp_path, content):
    path = tmp_path / 'foreign.pt'
    torch.save(content, path)
    with pytest.raises(FileFormatError, match='not a pydnn2 file'):
        nn.load(path)


@pytest.mark.parametrize('version', [999, 2, '1', None])
def test_a_newer_or_unknown_format_version_asks_for_an_upgrade(small_net, tmp_path, version):
    state = torch.load(files.save(small_net(), tmp_path / 'net.pt'), weights_only=True)
    state['format_version'] = version
    path = tmp_path / 'future.pt'
    torch.save(state, path)
    with pytest.raises(FileFormatError, match='upgrade pydnn2') as info:
        nn.load(path)
    assert repr(version) in str(info.value)


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / 'other.pt'
    torch.save({'format': 'pydnn2', 'format_version': 1, 'kind': 'checkpoint'}, path)
    with pytest.raises(FileFormatError, match="'checkpoint'"):
        nn.load(path)


@pytest.mark.parametrize('damage', ['config', 'calls', 'weights', 'preprocessor'])
def test_damaged_contents_are_reported(small_net, tmp_path, damage):
    state = torch.load(files.save(small_net(), tmp_path / 'net.pt'), weights_only=True)
    if damage == 'weights':
        state['weights'] = {k: torch.zeros(0) for k in state['weights']}
    else:
        del state[damage]
    path = tmp_path / 'net.pt'
    torch.save(files.sealed(state), path)      # sealed again: only the contents are wrong
    with pytest.raises(FileFormatError, match='contents are damaged'):
        nn.load(path)


def test_a_missing_file_does_not_exist(tmp_path):
    with pytest.raises(FileFormatError, match='does not exist'):
        nn.load(tmp_path / 'nothing.pt')
    with pytest.raises(FileFormatError, match='does not exist'):
        nn.load(tmp_path)                               # a folder is not a file
