"""The history train returns: still a dict of lists, shown as the epoch table."""

import copy
import json
import pickle

import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.preprocess import split_training_data
from pydnn2.train import HISTORY_KEYS, History
from pydnn2.train.checkpoints import list_checkpoints
from pydnn2.train.history import TEXT_ROWS


@pytest.fixture(scope='module')
def trained(digits_cached, net_maker, tmp_path_factory):
    sets = split_training_data(digits_cached, 32, 60, 20, 20)
    net = net_maker(sets, tmp_path_factory.mktemp('history'))
    history = net.train(nn.Adam(0.01), epochs=3, final_epochs=1,
                        eval_metric=nn.Accuracy())
    return net, history


def test_train_returns_a_history_that_is_the_nets_and_a_plain_dict(trained):
    net, history = trained
    assert isinstance(history, History) and isinstance(history, dict)
    assert net.history is history
    assert set(history) == set(HISTORY_KEYS) | {'valid_accuracy'}
    assert history['epoch'] == [1, 2, 3, 4] and history['phase'][-1] == 'final'
    assert json.loads(json.dumps(history)) == dict(history)
    again = pickle.loads(pickle.dumps(history))
    assert type(again) is History and again == history
    assert copy.deepcopy(history) == history and history.epochs == 4


def test_its_repr_is_the_epoch_table_with_the_numbers(trained):
    _, history = trained
    lines = repr(history).splitlines()
    assert lines[0] == 'History: 4 epochs (3 main, 1 final)'
    assert lines[1].split()[:6] == ['epoch', 'phase', 'train', 'loss', 'train', 'err']
    assert 'valid accuracy' in lines[1] and 'test loss' in lines[1]
    assert len(lines) == 2 + 4
    for i, line in enumerate(lines[2:]):
        cells = line.split()
        assert cells[:3] == [str(i + 1), history['phase'][i], f'{history["train_loss"][i]:.4f}']
        assert f'{100 * history["train_error"][i]:.2f}%' in cells
        assert f'{history["learning_rate"][i]:.3g}' in cells
    assert f'{history["valid_loss"][0]:.4f}' in lines[2]
    assert f'{history["valid_accuracy"][0]:.4g}' in lines[2]


def test_its_html_is_a_table_of_every_epoch(trained):
    _, history = trained
    page = history._repr_html_()
    assert page.count('<tr>') == 1 + 4 and '<th>phase</th>' in page
    assert 'History: 4 epochs (3 main, 1 final)' in page
    for loss in history['train_loss']:
        assert f'>{loss:.4f}<' in page


def test_columns_without_values_are_left_out_and_a_long_history_is_shortened():
    n = TEXT_ROWS + 7
    history = History(epoch=list(range(1, n + 1)), phase=['main'] * n,
                      train_loss=[1 / k for k in range(1, n + 1)], test_loss=[None] * n)
    lines = repr(history).splitlines()
    assert 'test' not in lines[1] and 'test' not in history._repr_html_()
    assert len(lines) == 2 + TEXT_ROWS + 1
    assert lines[2 + TEXT_ROWS // 2] == f'... {n - TEXT_ROWS} epochs not shown ...'
    assert lines[2].split() == ['1', 'main', '1.0000']
    assert lines[-1].split() == [str(n), 'main', f'{1 / n:.4f}']
    assert history._repr_html_().count('<tr>') == 1 + n
    assert repr(History()).startswith('History: 0 epochs')


def test_a_checkpoint_holds_the_history_as_a_plain_dict_and_a_resume_a_history(small_net):
    net = small_net()
    first = net.train(nn.Adam(0.01), epochs=2, checkpoint_every=1, restore_best=False)
    state = torch.load(list_checkpoints(net)[-1], weights_only=True)
    assert type(state['session']['history']) is dict
    assert state['session']['history'] == dict(first)
    again = small_net().train(nn.Adam(0.01), epochs=3, restore_best=False, resume=True)
    assert type(again) is History and again['epoch'] == [1, 2, 3]
    assert again['train_loss'][:2] == first['train_loss']


def test_a_net_not_trained_yet_has_an_empty_history(small_net):
    net = small_net()
    assert type(net.history) is History and net.history.epochs == 0
    assert dict(net.history) == {key: [] for key in HISTORY_KEYS}
    assert repr(net.history).startswith('History: 0 epochs')
    loaded = nn.load(nn.save(net, 'net.pt'))
    assert loaded.history.epochs == 0
    history = net.train(nn.Adam(0.01), epochs=1)
    assert net.history is history and history.epochs == 1
