"""What pydnn2 says while training is a record of the 'pydnn2' logger: shown on stdout
when verbose (beside the epoch table, which stays on stdout), recorded either way."""

import logging

import pytest

from conftest import make_small_net
from pydnn2 import messages
from pydnn2 import neuralnet as nn


def mlp(net):
    net.add_hidden(16)
    net.add_logistic()


def said(caplog):
    return [r.getMessage() for r in caplog.records if r.name.startswith('pydnn2')]


@pytest.mark.parametrize('verbose', [False, True])
def test_training_messages_are_logged_and_shown_when_verbose(digits_sets, tmp_path, caplog,
                                                             capsys, verbose):
    net = make_small_net(digits_sets, tmp_path, build=mlp)
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger='pydnn2'):
        net.train(nn.Adam(0.01), epochs=2, checkpoint_every=1, verbose=verbose)
        net.train(nn.Adam(0.01), epochs=3, resume=True, verbose=verbose)
    records = said(caplog)
    assert any(m.startswith('resuming from') and 'after 2 epochs' in m for m in records)
    assert sum('best net saved to' in m for m in records) == 2
    assert {r.name for r in caplog.records if r.name.startswith('pydnn2')} == {'pydnn2.train'}
    out = capsys.readouterr().out
    assert ('best net saved to' in out) == verbose
    assert ('train loss' in out) == verbose                  # the epoch table's header


def test_without_the_console_handler_nothing_is_shown_but_the_table(digits_sets, tmp_path,
                                                                   capsys):
    net = make_small_net(digits_sets, tmp_path, build=mlp)
    capsys.readouterr()
    logger = logging.getLogger('pydnn2')
    logger.removeHandler(messages.console)
    try:
        net.train(nn.Adam(0.01), epochs=1, verbose=True)
    finally:
        logger.addHandler(messages.console)
    out = capsys.readouterr().out
    assert 'best net saved' not in out and 'train loss' in out    # the table is still there
