"""Names that cannot escape their folder, and weights that are numbers (issue 21, items 13
and 17).

- ``NN(name=...)`` follows the rule a loaded name follows (``files.trusted_location``):
  a plain file name, else a ``ConfigError`` before anything is written;
- a file whose weights hold NaN or infinity (sealed: its checksum is valid) is
  refused by ``load``, ``load_checkpoint`` and ``resume``, naming the tensor, and
  ``predict`` on a net whose weights went non-finite is a ``DataError``.
"""

import os

import numpy as np
import pytest
import torch

from pydnn2 import files
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError, FileFormatError
from pydnn2.train import checkpoints


def poisoned(path, value=float('nan'), where=lambda s: s):
    """Rewrite a saved file with one value of its first weight matrix set to ``value`` and
    its checksum sealed again: intact bytes, a net that diverged. Returns the tensor's name."""
    state = torch.load(path, weights_only=True)
    weights = where(state)['weights']
    name = next(k for k, v in weights.items() if v.dim() > 1)
    weights[name].view(-1)[3] = value
    torch.save(files.sealed(state), path)
    return name


# -- item 13: a net's name is a plain file name -----------------------------------------------

@pytest.mark.parametrize('name', ['/abs', '../x', 'a/b', 'a\\b', 'x\0y', '.', '..', ''])
def test_a_name_that_is_not_a_plain_file_name_is_refused_when_the_net_is_made(
        small_net, tmp_path, name):
    with pytest.raises(ConfigError, match='name must be a plain file name') as info:
        small_net(name=name)
    assert repr(name) in str(info.value) and 'output_dir' in str(info.value)
    assert os.listdir(tmp_path) == []


def test_the_name_is_checked_whenever_it_is_set(small_net, tmp_path):
    net = small_net(name='digits-v2.1')                  # plain names of any characters
    with pytest.raises(ConfigError, match=r"received '\.\./x'"):
        net.name = '../x'
    assert net.name == 'digits-v2.1'
    net.train(nn.Adam(0.01), epochs=1)
    assert os.listdir(tmp_path) == ['digits-v2.1_best_net.pt']


def test_loaded_names_and_made_names_follow_one_rule(small_net, tmp_path):
    saved = files.save(small_net(), tmp_path / 'net.pt')
    for name in ('../x', 'a/b'):
        state = torch.load(saved, weights_only=True)
        state['config']['name'] = name
        torch.save(files.sealed(state), tmp_path / 'renamed.pt')
        with pytest.warns(UserWarning, match='never chooses where pydnn2 writes'):
            assert nn.load(tmp_path / 'renamed.pt').name == 'net'
        with pytest.raises(ConfigError):
            small_net(name=name)


# -- item 17: non-finite weights are refused ------------------------------------------------

@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_load_refuses_a_sealed_file_with_non_finite_weights_naming_the_tensor(
        small_net, tmp_path, value):
    path = files.save(small_net(), tmp_path / 'net.pt')
    name = poisoned(path, value)
    with pytest.raises(FileFormatError, match='non-finite weights') as info:
        nn.load(path)
    assert repr(name) in str(info.value) and repr(str(path)) in str(info.value)


def test_load_checkpoint_and_resume_refuse_non_finite_weights(small_net, tmp_path):
    small_net().train(nn.Adam(0.01), epochs=2, checkpoint_every=1)
    first, second = checkpoints.list_checkpoints(small_net())
    name = poisoned(second, where=lambda s: s['net'])
    with pytest.raises(FileFormatError, match=f'non-finite weights: {name!r} has 1 NaN'):
        nn.load_checkpoint(second)
    with pytest.raises(FileFormatError, match='non-finite weights'):
        small_net().train(nn.Adam(0.01), epochs=3, resume=second)
    with pytest.warns(UserWarning, match='passes over a damaged checkpoint.*non-finite'):
        history = small_net().train(nn.Adam(0.01), epochs=3, resume=True)
    assert history['epoch'] == [1, 2, 3]                 # from the first, intact one
    assert np.isfinite(history['train_loss']).all()


def test_predict_on_a_net_whose_weights_went_non_finite_is_a_data_error(small_net):
    net = small_net()
    x = np.zeros((3, 1, 8, 8), np.float32)
    classes, _ = net.predict(x)
    params = net.get_params()
    name = next(k for k, v in params.items() if v.dim() > 1)
    params[name].view(-1)[0] = float('nan')
    net.set_params(params)
    for call in (lambda: net.predict(x), lambda: net.get_outputs(x),
                 lambda: net.evaluate((x, classes), nn.Accuracy())):
        with pytest.raises(DataError, match=f"weights are not finite: {name!r}"):
            call()


def test_files_of_finite_weights_still_load_with_or_without_a_checksum(small_net, tmp_path):
    net = small_net()
    path = files.save(net, tmp_path / 'net.pt')
    state = torch.load(path, weights_only=True)
    del state['checksum']                                # as written before checksums
    torch.save(state, tmp_path / 'old.pt')
    x = np.random.RandomState(0).rand(5, 1, 8, 8).astype(np.float32)
    for loaded in (nn.load(path), nn.load(tmp_path / 'old.pt')):
        assert np.array_equal(loaded.predict(x)[1], net.predict(x)[1])
