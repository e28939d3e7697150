"""DatasetPreprocessor on the training side: a map-style Dataset, an IterableDataset and a
user's DataLoader each train the digits CNN; how a stream is shared between workers and
ranks (every item once per epoch); workers kept across passes; a user's DataLoader's
options kept and its sampler replaced."""

import os
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from pydnn2.preprocess import DatasetPreprocessor
from pydnn2.preprocess.sources import EpochPlan, Shard

sys.path.insert(0, os.path.dirname(__file__))
from digit_datasets import (DigitItems, DigitStream, accuracy, adam, demo_net,
                            split, stack_collate)


def trained(pre, epochs, tmp_path, **options):
    net = demo_net(pre, output_dir=str(tmp_path))
    history = net.train(adam(), epochs=epochs, channels_last=False, **options)
    return net, history


@pytest.mark.slow
def test_a_map_style_dataset_that_augments_trains_the_digits_cnn(tmp_path):
    train, valid, test = split()
    pre = DatasetPreprocessor(DigitItems(train, augment=True), DigitItems(valid),
                              DigitItems(test), num_workers=2)
    net, history = trained(pre, 6, tmp_path)
    assert accuracy(net, test) >= 0.97
    assert history['valid_error'][-1] < 0.05


@pytest.mark.slow
def test_an_iterable_dataset_trains_the_digits_cnn(tmp_path):
    train, valid, test = split()
    pre = DatasetPreprocessor(DigitStream(train, augment=True), DigitStream(valid, False),
                              DigitItems(test), num_workers=2)
    assert pre.num_rows('train') is None
    net, history = trained(pre, 6, tmp_path)
    assert accuracy(net, test) >= 0.97
    # the error rate counts the rows trained: 1257 a pass (the last batch 41 rows short of
    # 64), each a count of mistakes over 1257
    assert all(abs(e * 1257 - round(e * 1257)) < 1e-6 for e in history['train_error'])


class CheckedCollate:
    """A user's collate_fn that refuses anything but the raw items of the net's batches."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __call__(self, items):
        if len(items) not in self.sizes:
            raise ValueError(f'collate_fn got {len(items)} items')
        for x, y in items:
            if not (isinstance(x, torch.Tensor) and x.shape == (1, 8, 8) and isinstance(y, int)):
                raise ValueError(f'collate_fn got a cooked item: {type(x)} {type(y)}')
        return stack_collate(items)


@pytest.mark.slow
def test_a_users_dataloader_with_workers_and_its_collate_fn_trains_the_digits_cnn(tmp_path):
    train, valid, test = split()
    # its batch_size (7), shuffle and drop_last give way to the net's batch of 64; the
    # collate_fn sees raw items: 64 of them (1 for the first item's spec, 180 and 360 for
    # evaluation batches of the whole set)
    loader = DataLoader(DigitItems(train, augment=True), batch_size=7, shuffle=True,
                        drop_last=True, num_workers=2,
                        collate_fn=CheckedCollate({1, 64, 256, 1257 % 256}))
    pre = DatasetPreprocessor(loader, DigitItems(valid), DigitItems(test))
    assert pre.options.num_workers is None        # its own options went with the loader
    net, _ = trained(pre, 6, tmp_path)
    assert accuracy(net, test) >= 0.97


@pytest.mark.slow
def test_an_iterable_stream_trains_the_same_batches_on_0_and_2_workers(tmp_path):
    train, valid, _ = split(train=640, valid=100)
    weights = []
    for workers in (0, 2):
        pre = DatasetPreprocessor(DigitStream(train, augment=True), DigitItems(valid),
                                  num_workers=workers)
        net, history = trained(pre, 2, tmp_path / str(workers))
        weights.append((net.module.state_dict(), history['train_loss']))
    (a, loss_a), (b, loss_b) = weights
    assert loss_a == loss_b
    assert all(torch.equal(a[k], b[k]) for k in a)


class Indices(IterableDataset):
    """Items ``(tensor([i]), i % 10)`` for i < n; ``own_share``: only this worker's."""

    def __init__(self, n, own_share=False):
        self.n, self.own_share = n, own_share

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rows = range(self.n)
        if self.own_share and info is not None:
            rows = rows[info.id::info.num_workers]
        for i in rows:
            yield torch.tensor([float(i)]), i % 10


def served(pre, rank, world, batch=8, start=0, name='train'):
    """The item indices of each batch rank ``rank`` of ``world`` trains on."""
    plan = EpochPlan(batch_size=batch, shard=Shard(rank, world),
                     order=torch.Generator().manual_seed(5), start=start)
    return [x['images'].flatten().round().long().tolist()
            for x, _ in pre.source(name).batches(plan)]


@pytest.mark.parametrize('workers', [0, 2])
@pytest.mark.slow
def test_a_stream_is_shared_so_every_item_trains_once_as_one_process_would(workers):
    pre = DatasetPreprocessor(Indices(37), normalize=None, num_workers=workers)
    alone = served(pre, 0, 1)
    assert [len(b) for b in alone] == [8, 8, 8, 8, 5]                 # the tail trained too
    assert sorted(i for b in alone for i in b) == list(range(37))
    ranks = [served(pre, r, 2) for r in range(2)]
    assert [len(b) for b in ranks[0]] == [4, 4, 4, 4, 2]
    assert [len(b) for b in ranks[1]] == [4, 4, 4, 4, 3]
    # each global batch is the one-process batch, split in rank order
    assert [a + b for a, b in zip(*ranks)] == alone
    # a resumed pass starts at its batch, drawing the earlier ones without serving them
    assert served(pre, 1, 2, start=3) == ranks[1][3:]


def test_a_last_batch_smaller_than_the_ranks_is_left_out_on_every_rank():
    pre = DatasetPreprocessor(Indices(33), normalize=None, num_workers=0)
    assert served(pre, 0, 1)[-1] == [32]
    assert [len(b) for b in served(pre, 0, 2)] == [4] * 4
    assert [len(b) for b in served(pre, 1, 2)] == [4] * 4


def test_a_stream_that_shards_itself_is_batched_as_each_worker_yields_it():
    pre = DatasetPreprocessor(Indices(40, own_share=True), normalize=None, num_workers=2,
                              shards='dataset')
    batches = served(pre, 0, 1)
    assert sorted(i for b in batches for i in b) == list(range(40))
    assert batches[0] == [0, 2, 4, 6, 8, 10, 12, 14]          # worker 0's share
    assert batches[1] == [1, 3, 5, 7, 9, 11, 13, 15]          # then worker 1's


def test_evaluation_passes_of_a_stream_serve_each_rank_whole_batches_in_turn():
    pre = DatasetPreprocessor(Indices(37), normalize=None, num_workers=2)
    plans = [EpochPlan(batch_size=8, shard=Shard(r, 2), whole_batches=False) for r in (0, 1)]
    rows = [[x['images'].flatten().long().tolist() for x, _ in pre.source('train').batches(p)]
            for p in plans]
    assert rows[0] == [list(range(0, 8)), list(range(16, 24)), list(range(32, 37))]
    assert rows[1] == [list(range(8, 16)), list(range(24, 32))]


class Pids(Dataset):
    """Items ``(tensor([pid of the process reading it]), 0)``."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        return torch.tensor([float(os.getpid())]), 0


def pids(batches):
    return {int(p) for x, _ in batches for p in x['images'].flatten().tolist()}


def test_map_style_workers_live_from_pass_to_pass_and_a_nested_pass_reads_on_its_own():
    pre = DatasetPreprocessor(Pids(), normalize=None, num_workers=2)
    source = pre.source('train')
    plan = EpochPlan(batch_size=16, order=torch.Generator().manual_seed(0))
    first = pids(source.batches(plan))
    assert len(first) == 2 and os.getpid() not in first
    outer = iter(source.batches(plan))
    inside = [next(outer)]
    nested = pids(source.batches(plan))         # read while the outer pass is being read
    inside += list(outer)
    assert pids(inside) == first                # the kept workers, again
    assert nested.isdisjoint(first) and len(nested) == 2
    pre.close()
    assert pids(source.batches(plan)).isdisjoint(first)


def mark_worker(worker_id):
    os.environ['DIGITS_WORKER_MARK'] = '7'


class Marked(Dataset):
    """Items whose value says whether the worker_init_fn ran in the reading process."""

    def __len__(self):
        return 32

    def __getitem__(self, index):
        return torch.tensor([float(os.environ.get('DIGITS_WORKER_MARK', 0))]), index % 10


def test_a_users_map_style_dataloader_keeps_its_workers_and_worker_init_fn():
    loader = DataLoader(Marked(), batch_size=3, shuffle=True, num_workers=2,
                        worker_init_fn=mark_worker, timeout=60)
    pre = DatasetPreprocessor(loader, normalize=None)
    plan = EpochPlan(batch_size=8, order=torch.Generator().manual_seed(0))
    batches = list(pre.source('train').batches(plan))
    assert [len(y) for _, y in batches] == [8] * 4        # the net's batch, not the loader's
    assert all(x['images'].eq(7).all() for x, _ in batches)
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(i % 10 for i in range(32))


@pytest.mark.slow
def test_an_iterable_dataloader_is_read_as_it_is():
    loader = DataLoader(Indices(23), batch_size=5)
    pre = DatasetPreprocessor(loader, normalize=None)
    plan = EpochPlan(batch_size=8, order=torch.Generator().manual_seed(0))
    batches = [x['images'].flatten().long().tolist() for x, _ in pre.source('train').batches(plan)]
    assert batches == [list(range(i, min(i + 5, 23))) for i in range(0, 23, 5)]
    resumed = EpochPlan(batch_size=8, order=torch.Generator().manual_seed(0), start=2)
    assert [x['images'].flatten().long().tolist()
            for x, _ in pre.source('train').batches(resumed)] == batches[2:]


def test_final_epochs_chain_a_stream_with_map_style_sets(tmp_path):
    train, valid, test = split(train=400, valid=100)
    pre = DatasetPreprocessor(DigitStream(train), DigitItems(valid), DigitItems(test[:100]),
                              num_workers=0)
    assert pre.num_rows('all') is None
    plan = EpochPlan(batch_size=64, order=torch.Generator().manual_seed(0))
    rows = [len(y) for _, y in pre.source('all').batches(plan)]
    # the stream's 400 items (6 batches and 16), then valid's and test's whole batches
    assert rows == [64] * 6 + [16] + [64] + [64]
    net, history = trained(pre, 1, tmp_path, final_epochs=1)
    assert history['phase'] == ['main', 'final']
    assert np.isfinite(history['train_loss']).all()


@pytest.mark.slow
def test_validation_and_test_sets_may_be_dataloaders_of_either_kind(tmp_path):
    train, valid, test = split(train=320, valid=100)
    plain = DatasetPreprocessor(DigitItems(train), DigitItems(valid), DigitItems(test[:100]),
                                num_workers=0)
    loaders = DatasetPreprocessor(
        DigitItems(train), DataLoader(DigitItems(valid), collate_fn=stack_collate),
        DataLoader(DigitStream(test[:100], shuffle=False), batch_size=30), num_workers=0)
    assert loaders.num_rows('valid') == 100 and loaders.num_rows('test') is None
    _, expected = trained(plain, 2, tmp_path / 'plain')
    _, history = trained(loaders, 2, tmp_path / 'loaders')
    assert history['train_loss'] == expected['train_loss']
    for key in ('valid_loss', 'valid_error', 'test_loss', 'test_error'):
        assert history[key] == pytest.approx(expected[key], rel=1e-6)
