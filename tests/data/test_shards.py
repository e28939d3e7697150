"""The sharded format: write_shards and ShardDataset (WebDataset tar shards)."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from pydnn2 import neuralnet as nn
from pydnn2.data import ShardDataset, write_shards
from pydnn2.data.tarfiles import TarIndex
from pydnn2.errors import ConfigError, DataError
from pydnn2.preprocess import DatasetPreprocessor
from pydnn2.preprocess.sources import EpochPlan, Shard

webdataset = pytest.importorskip('webdataset')


class Rows(torch.utils.data.Dataset):
    """Arrays as items ``({'images': x}, y)``: what a ShardDataset of them serves."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {'images': self.x[i]}, int(self.y[i])


class Recording(ShardDataset):
    """A ShardDataset that notes every row it reads (in this process)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = []

    def __getitem__(self, index):
        self.read.append(index)
        return super().__getitem__(index)


def png(array):
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, format='PNG')
    return stream.getvalue()


def test_arrays_round_trip_over_several_shards(tmp_path, digits):
    x, y, _ = digits
    index = write_shards(tmp_path / 'd', (x[:250], y[:250]), per_shard=100)
    data = ShardDataset(index)
    assert len(data) == 250 and data.num_shards == 3
    assert sorted(os.listdir(tmp_path / 'd')) == ['index.json', 'shard-000000.tar',
                                                  'shard-000001.tar', 'shard-000002.tar']
    for i in (0, 99, 100, 249, 17):
        row, label = data[i]
        assert row['images'].dtype == np.float32 and label == y[i]
        np.testing.assert_array_equal(row['images'], x[i])
    with pytest.raises(IndexError, match='250 is out of range'):
        data[250]


def test_a_reader_keeps_few_files_open(tmp_path, digits, monkeypatch):
    from pydnn2.data import shards
    monkeypatch.setattr(shards, 'OPEN_SHARDS', 2)
    x, y, _ = digits
    data = ShardDataset(write_shards(tmp_path / 'd', (x[:50], y[:50]), per_shard=10))
    for i in (0, 15, 25, 35, 45, 5):
        assert data[i][1] == y[i] and len(data._files) <= 2
    assert sorted(data._files) == [0, 4] and len(data._indexes) == 5


def test_dict_channels_images_resized_and_in_colour(tmp_path):
    rng = np.random.RandomState(0)
    items = [({'pixels': png(rng.randint(0, 255, (5 + i, 7), dtype=np.uint8)),
               'size': np.array([5 + i, 7], np.int64)}, i % 3) for i in range(6)]
    write_shards(tmp_path / 's', items, per_shard=4)
    grey = ShardDataset(tmp_path / 's', image_size=(4, 6))
    x, label = grey[5]
    assert label == 2 and x['pixels'].shape == (1, 4, 6) and x['pixels'].dtype == np.uint8
    assert x['size'].tolist() == [10, 7]
    colour = ShardDataset(tmp_path / 's', color=True, channels=['pixels'])
    x, _ = colour[0]
    assert set(x) == {'pixels'} and x['pixels'].shape == (3, 5, 7)
    np.testing.assert_array_equal(x['pixels'][0], x['pixels'][2])      # grey stored: R == B


def test_shards_are_webdataset_shards_both_ways(tmp_path, digits):
    """wids (WebDataset's indexed reader) reads pydnn2's shards, and pydnn2 reads shards
    written by WebDataset's own writer with its defaults (a PAX header per member)."""
    wids = pytest.importorskip('wids')
    x, y, _ = digits
    index = write_shards(tmp_path / 'ours', (x[:30], y[:30]), per_shard=8)
    theirs = wids.ShardListDataset(index, transformations=[], localname=lambda url: url)
    sample = theirs[20]
    assert np.load(sample['.images.npy']).tolist() == x[20].tolist()
    assert int(sample['.cls'].read()) == y[20]
    os.mkdir(tmp_path / 'wds')
    with webdataset.ShardWriter(str(tmp_path / 'wds' / 'part-%02d.tar'), maxcount=8,
                                verbose=0) as sink:
        for i in range(30):
            sink.write({'__key__': f'sample{i}', 'images.npy': x[i], 'cls': int(y[i])})
    shards = [{'url': str(tmp_path / 'wds' / f'part-{k:02d}.tar'), 'nsamples': min(8, 30 - 8 * k)}
              for k in range(4)]
    data = ShardDataset(shards)
    assert TarIndex(shards[0]['url']).key(3) == 'sample3'
    assert data[29][0]['images'].tolist() == x[29].tolist() and data[29][1] == y[29]


def _sets(tmp_path, digits):
    x, y, _ = digits
    parts = {'train': slice(0, 900), 'valid': slice(900, 1200), 'test': slice(1200, None)}
    arrays = {k: (x[s], y[s]) for k, s in parts.items()}
    shards = {k: ShardDataset(write_shards(tmp_path / k, a, per_shard=256))
              for k, a in arrays.items()}
    return arrays, shards


@pytest.mark.slow
def test_a_net_trains_from_shards_as_from_the_same_rows_in_memory(tmp_path, digits, small_net):
    arrays, shards = _sets(tmp_path, digits)
    results = []
    for sets in ({k: Rows(*a) for k, a in arrays.items()}, shards):
        pre = DatasetPreprocessor(sets['train'], sets['valid'], sets['test'], num_workers=0)
        net = small_net(pre=pre, output_dir=tmp_path / f'run{len(results)}')
        history = net.train(nn.Adam(0.01), epochs=3)
        results.append((history, {k: v.clone() for k, v in net.module.state_dict().items()}))
    (memory, weights), (sharded, sharded_weights) = results
    assert sharded['train_loss'] == memory['train_loss']
    for name, value in weights.items():
        assert torch.equal(value, sharded_weights[name]), name
    x, y = arrays['test']
    assert np.mean(net.predict(x)[0] == y) > 0.8


def test_each_rank_reads_only_its_rows_and_a_resume_skips(tmp_path, digits):
    x, y, _ = digits
    write_shards(tmp_path / 't', (x[:300], y[:300]), per_shard=128)
    whole, ranks = None, []
    for shard in (Shard(0, 1), Shard(0, 2), Shard(1, 2)):
        data = Recording(tmp_path / 't')
        pre = DatasetPreprocessor(data, num_workers=0, normalize=None)
        data.read.clear()
        plan = EpochPlan(batch_size=64, shard=shard, order=torch.Generator().manual_seed(7))
        batches = list(pre.source('train').batches(plan))
        for (bx, by), rows in zip(batches, np.array_split(data.read, len(batches))):
            np.testing.assert_array_equal(bx['images'].numpy(), x[rows])
            np.testing.assert_array_equal(by.numpy(), y[rows])
        if shard.world == 1:
            whole = data.read
        else:
            ranks.append(data.read)
    assert len(whole) == 4 * 64 and all(len(r) == 4 * 32 for r in ranks)
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(whole)
    for b in range(4):                                          # each rank: its block of a batch
        assert ranks[0][32 * b:32 * b + 32] + ranks[1][32 * b:32 * b + 32] == \
            whole[64 * b:64 * b + 64]
    data = Recording(tmp_path / 't')
    pre = DatasetPreprocessor(data, num_workers=0, normalize=None)
    data.read.clear()
    plan = EpochPlan(batch_size=64, order=torch.Generator().manual_seed(7), start=3)
    assert len(list(pre.source('train').batches(plan))) == 1
    assert data.read == whole[3 * 64:]                          # batches 0..2 never read


def test_workers_read_what_one_process_reads(tmp_path, digits):
    x, y, _ = digits
    write_shards(tmp_path / 'w', (x[:300], y[:300]), per_shard=64)
    passes = []
    for workers in (0, 2):
        pre = DatasetPreprocessor(ShardDataset(tmp_path / 'w'), num_workers=workers)
        plan = EpochPlan(batch_size=50, order=torch.Generator().manual_seed(3))
        passes.append(list(pre.source('train').batches(plan)))
    for (a, ya), (b, yb) in zip(*passes):
        assert torch.equal(a['images'], b['images']) and torch.equal(ya, yb)


def test_bad_input(tmp_path, digits):
    x, y, _ = digits
    write_shards(tmp_path / 'full', (x[:10], y[:10]))
    with pytest.raises(ConfigError, match='empty folder'):
        write_shards(tmp_path / 'full', (x[:10], y[:10]))
    with pytest.raises(DataError, match='10 rows of x but 9 classes'):
        write_shards(tmp_path / 'a', (x[:10], y[:9]))
    with pytest.raises(DataError, match='the set is empty'):
        write_shards(tmp_path / 'b', (x[:0], y[:0]))
    with pytest.raises(DataError, match='item 1 has class -1'):
        write_shards(tmp_path / 'c', [(x[0], 1), (x[1], -1)])
    assert os.listdir(tmp_path / 'c') == []             # what it had written is removed
    write_shards(tmp_path / 'c', (x[:4], y[:4]), per_shard=2)      # exactly two full shards
    assert len(ShardDataset(tmp_path / 'c')) == 4 and len(os.listdir(tmp_path / 'c')) == 3
    with pytest.raises(DataError, match='channel names must be identifiers'):
        write_shards(tmp_path / 'd', [({'a.b': x[0]}, 1)])
    with pytest.raises(DataError, match="item 0, channel 'images': expected numbers"):
        write_shards(tmp_path / 'e', [(np.array(['x']), 1)])
    with pytest.raises(DataError, match='not an image Pillow can read'):
        write_shards(tmp_path / 'f', [(b'not an image', 1)])
    with pytest.raises(DataError, match='no shard index at'):
        ShardDataset(tmp_path / 'nowhere')
    (tmp_path / 'bad.json').write_text('{"shardlist": 3}')
    with pytest.raises(DataError, match='non-empty list of'):
        ShardDataset(tmp_path / 'bad.json')
    index = json.loads((tmp_path / 'full' / 'index.json').read_text())
    index['shardlist'][0]['nsamples'] = 11
    (tmp_path / 'full' / 'wrong.json').write_text(json.dumps(index))
    with pytest.raises(DataError, match='holds 10 samples; its index says 11'):
        ShardDataset(tmp_path / 'full' / 'wrong.json')[0]
    os.remove(tmp_path / 'full' / 'shard-000000.tar')
    with pytest.raises(DataError, match='shard-000000.tar.* does not exist'):
        ShardDataset(tmp_path / 'full')


def test_a_sample_without_its_class_or_with_a_foreign_member(tmp_path):
    path = tmp_path / 'shard.tar'
    with tarfile.open(path, 'w', format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [('a.images.npy', b'x'), ('b.txt', b'hello'), ('b.cls', b'1')]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = ShardDataset([{'url': str(path), 'nsamples': 2}])
    with pytest.raises(DataError, match=r"sample 'a' \(row 0\) has no class"):
        data[0]
    with pytest.raises(DataError, match="member 'txt': cannot read members of type 'txt'"):
        data[1]
    with pytest.raises(DataError, match=r"has channels \[\]; expected \['images'\]"):
        ShardDataset([{'url': str(path), 'nsamples': 2}], channels=['images'])[1]


@pytest.mark.slow
def test_decode_image_reads_bytes_as_read_image_reads_the_file(tmp_path):
    from pydnn2.data import decode_image, read_image
    rng = np.random.RandomState(1)
    rgb = rng.randint(0, 255, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    data = (tmp_path / 'a.png').read_bytes()
    for color in (False, True):
        np.testing.assert_array_equal(decode_image(data, color),
                                      read_image(tmp_path / 'a.png', color))
    with pytest.raises(DataError, match='cannot read row 7 as an image'):
        decode_image(b'garbage', where='row 7')
