"""TrainConfig checks every option of train(); keepers of the best weights are shared."""

import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError
from pydnn2.train.best import BestWeights, Keepers
from pydnn2.train.config import Speed, TrainConfig


def test_options_become_one_checked_config():
    config = TrainConfig.from_options(epochs=4, final_epochs=1, l2_reg=0.1, patience=2,
                                      amp='bf16', channels_last=1)
    assert (config.epochs, config.final_epochs, config.l2_reg, config.patience) == (4, 1, 0.1, 2)
    assert config.speed == Speed(amp='bf16', channels_last=True)
    assert TrainConfig().speed == Speed() and TrainConfig().keep_checkpoints == 3


@pytest.mark.parametrize('options, message', [
    (dict(epoch=3), r"unknown options \['epoch'\]; known: \[.*'epochs'"),
    (dict(keep_checkpoints=0), 'keep_checkpoints must be a positive integer'),
    (dict(checkpoint_every=1.5), 'checkpoint_every must be a positive integer or None'),
    (dict(l1_reg=-1), 'l1_reg must be a number >= 0'),
    (dict(callbacks='history.csv'), ('callbacks must be a pydnn2 Callback or a list of them; '
                                     'received str')),
    (dict(resume=3), "resume must be None, True, 'auto' or a checkpoint path"),
    (dict(amp='fp8'), "amp must be one of None, 'auto', 'bf16', 'fp16'"),
])
def test_bad_options_are_refused_before_training(options, message, small_net):
    net = small_net()
    before = net.get_params()
    with pytest.raises(ConfigError, match=message):
        net.train(nn.Adam(0.01), epochs=1, **options)
    assert all(torch.equal(before[k], v) for k, v in net.get_params().items())


def test_one_callback_alone_needs_no_list(small_net, tmp_path):
    logger = nn.HistoryLogger(str(tmp_path / 'h.csv'))
    assert TrainConfig(callbacks=logger).callbacks == [logger]
    assert TrainConfig(callbacks=(logger,)).callbacks == (logger,)
    small_net().train(nn.Adam(0.01), epochs=1, callbacks=logger)
    assert (tmp_path / 'h.csv').read_text().count('\n') == 2      # header and one epoch


class Weights:
    """A stand-in net whose weights are one number."""

    def __init__(self):
        self.value = 0

    def get_params(self):
        return {'w': torch.tensor(self.value)}

    def set_params(self, params):
        self.value = int(params['w'])


def test_a_keeper_keeps_the_best_weights_once_per_epoch():
    keeper, net = BestWeights('valid_error', mode='max', min_delta=0.05), Weights()
    for epoch, (value, weights) in enumerate([(0.5, 1), (0.52, 2), (0.6, 3), (0.4, 4)], 1):
        net.value = weights
        assert keeper.update({'epoch': epoch, 'valid_error': value}, net) == (epoch in (1, 3))
    assert (keeper.best, keeper.epoch, keeper.since) == (0.6, 3, 1)
    net.value = 9
    assert keeper.update({'epoch': 4, 'valid_error': 0.9}, net) is False   # epoch 4 was seen
    assert keeper.update({'epoch': 5}, net) is None and keeper.since == 1
    assert keeper.restore(net) and net.value == 3
    assert not BestWeights().restore(net)
    with pytest.raises(ConfigError, match="mode must be one of 'min', 'max'"):
        BestWeights(mode='up')


def test_keepers_share_one_per_criterion_and_round_trip():
    keepers = Keepers()
    assert keepers.get('valid_loss') is keepers.get('valid_loss')
    assert keepers.get('valid_loss') is not keepers.get('valid_loss', min_delta=0.1)
    net = Weights()
    net.value = 7
    keepers.update({'epoch': 1, 'valid_loss': 0.3, 'train_loss': 0.2}, net)
    again = Keepers()
    again.load_state_dict(keepers.state_dict())
    assert again.get('valid_loss').params['w'] == 7
    assert again.get('valid_loss', min_delta=0.1).best == 0.3


def test_early_stopping_patience_and_wacky_share_the_runs_best_net(small_net):
    net = small_net()
    stopper = nn.EarlyStopping('valid_loss', patience=50)
    wacky = nn.WackyLearningRateAnnealer(0.01, 0.0001, patience=50, reset_on_decay='validation')

    class Spy(nn.Callback):
        def on_train_end(self, net, logs):
            best = self.trainer.best
            self.same = (stopper.keeper is best.track('valid_loss') is best.main
                         and wacky._best is best and self.session is self.trainer)
            self.kept = best.params is not None

    spy = Spy()
    net.train(nn.Adam(wacky), epochs=2, patience=5, callbacks=[stopper, spy], verbose=False)
    assert spy.same
    assert spy.kept and wacky.state_dict()['kept'] is None     # (the run's, not its own)
