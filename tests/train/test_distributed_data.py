"""Torch datasets under torchrun: a shard per rank, in training and in prediction.

Each run is a child process (dataset_child.py: a digits MLP trained from
map-style datasets through a DatasetPreprocessor with one DataLoader worker per
process) started alone with ``python`` or as two gloo ranks with ``torchrun``;
every child has a time limit and its process group is killed if it overruns
(test_distributed.py's helpers).
"""

import collections
import os
import sys

import pytest
import torch

from test_distributed import TORCHRUN, assert_close, finish, start

CHILD = os.path.join(os.path.dirname(__file__), 'dataset_child.py')
TRAIN_ROWS, PREDICT_ROWS = 1024, 517
pytestmark = [pytest.mark.slow,     # a torchrun launch shared by the module
              pytest.mark.skipif(not torch.distributed.is_available()
                                 or not torch.distributed.is_gloo_available(),
                                 reason='needs torch.distributed with gloo')]


def child(root, name, *flags, nproc=None):
    """The child alone (``nproc`` None) or as ``nproc`` torchrun ranks, in ``root/name``."""
    folder = root / name
    (folder / 'out').mkdir(parents=True)
    (folder / 'reads').mkdir()
    launch = ([*TORCHRUN, '--standalone', f'--nproc_per_node={nproc}'] if nproc
              else [sys.executable])
    return start([*launch, CHILD, folder / 'out', folder / 'result.pt', folder / 'reads', *flags])


def reads(folder, name):
    """The indices a log of ``__getitem__`` calls holds, in order."""
    return [int(line) for line in (folder / 'reads' / name).read_text().split()]


def results(folder, rank):
    return torch.load(folder / f'result.pt.rank{rank}.pt')


def assert_same(a, b, tolerance, where=''):
    """Nested tensors (dicts, lists) equal within ``tolerance``, shapes exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], tolerance, f'{where}.{key}')
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same(u, v, tolerance, f'{where}[{i}]')
    else:
        assert a.shape == b.shape, where
        if a.numel():
            difference = (a.double() - b.double()).abs().max().item()
            assert difference <= tolerance, f'{where}: {difference}'


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """One process and two torchrun ranks, the same script, 3 epochs; then the 2-rank
    checkpoint of epoch 2 finished by one process."""
    root = tmp_path_factory.mktemp('datasets')
    finish([child(root, 'one'), child(root, 'two', nproc=2)], timeout=240)
    checkpoint = root / 'two' / 'out' / 'ds_checkpoint_0002.pt'
    finish([child(root, 'resumed', '--resume', checkpoint, '--train-only')], timeout=180)
    return root


def test_each_rank_reads_its_own_items_and_together_every_item_once_per_epoch(runs):
    for epoch in (1, 2, 3):
        first = reads(runs / 'two', f'train.rank0.epoch{epoch}')
        second = reads(runs / 'two', f'train.rank1.epoch{epoch}')
        assert len(first) == len(second) == TRAIN_ROWS // 2
        assert not set(first) & set(second)
        assert collections.Counter(first + second) == collections.Counter(range(TRAIN_ROWS))
        assert sorted(reads(runs / 'one', f'train.rank0.epoch{epoch}')) == list(range(TRAIN_ROWS))
    assert reads(runs / 'two', 'train.rank0.epoch1') != reads(runs / 'two', 'train.rank0.epoch2')


def test_two_ranks_end_with_the_weights_of_one_process(runs):
    assert_close(runs / 'one' / 'result.pt', runs / 'two' / 'result.pt')
    one, two = results(runs / 'one', 0), results(runs / 'two', 0)
    assert_same(one['history'], two['history'], 1e-6)


def test_sharded_prediction_reads_a_block_per_rank_and_equals_one_process_row_for_row(runs):
    assert reads(runs / 'two', 'predict.rank0') == list(range(PREDICT_ROWS // 2))
    assert reads(runs / 'two', 'predict.rank1') == list(range(PREDICT_ROWS // 2, PREDICT_ROWS))
    first, second = results(runs / 'two', 0), results(runs / 'two', 1)
    assert_same(first['sharded'], second['sharded'], 0)            # gathered alike
    assert_same(first['sharded'], first['whole'], 1e-6)            # the same weights, unsharded
    one = results(runs / 'one', 0)
    assert_same(one['whole'], first['sharded'], 1e-5)              # weights within 1e-6
    for key in ('array_classes', 'confusions', 'mistakes', 'interpret_confusion'):
        assert_same(one['whole'][key], first['sharded'][key], 0, key)
    assert_same(one['whole'], one['sharded'], 0)                   # shard=True alone: all rows


def test_an_unsharded_call_on_rank_0_alone_does_not_wait_for_the_others(runs):
    accuracies = results(runs / 'two', 0)['rank_zero_accuracies']
    assert len(accuracies) == 3 and len(results(runs / 'two', 1)['rank_zero_accuracies']) == 0
    assert_same(accuracies, results(runs / 'one', 0)['rank_zero_accuracies'], 1e-6)


def test_a_two_rank_checkpoint_resumes_in_one_process(runs):
    assert_close(runs / 'one' / 'result.pt', runs / 'resumed' / 'result.pt')
