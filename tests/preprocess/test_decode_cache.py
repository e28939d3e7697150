"""A streamed folder's decode cache (pydnn2.preprocess.decoded): the batches an uncached
pass serves, files decoded once, torn rows decoded again, a changed file a new cache,
and training that ends where it ends without the cache."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.data import DirectoryLabeledImageSet, write_plankton_images
from pydnn2.errors import ConfigError
from pydnn2.preprocess import Rotator360, StochasticStretchResizer, StretchResizer
from pydnn2.preprocess import decoded, split_training_data, streaming
from pydnn2.preprocess.decoded import PRESENT, TAG_BYTES
from pydnn2.preprocess.sources import EpochPlan

SHAPE = (16, 16)
CHILD = os.path.join(os.path.dirname(__file__), 'decode_cache_child.py')


@pytest.fixture
def folder(tmp_path):
    """A plankton-like folder: 4 classes of 10 images."""
    return write_plankton_images(str(tmp_path / 'plankton'), per_class=10, num_unlabeled=0,
                                 num_classes=4)[0]


def rotator(train_dir, **options):
    sets = split_training_data(DirectoryLabeledImageSet(train_dir, stream=True).build(), 8,
                               60, 20, 20)
    return Rotator360(sets, SHAPE, StretchResizer(), np.random.RandomState(3), **options)


def passes(pre, name='train', epochs=2):
    order = torch.Generator().manual_seed(5)
    return [list(pre.source(name).batches(EpochPlan(8, order=order))) for _ in range(epochs)]


def assert_same(ours, theirs):
    assert len(ours) == len(theirs) > 0
    for one, other in zip(ours, theirs):
        assert len(one) == len(other) > 0
        for (x, y), (x_ref, y_ref) in zip(one, other):
            torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
            for channel in x_ref:
                torch.testing.assert_close(x[channel], x_ref[channel], rtol=0, atol=0)


def cache_files(folder, suffix):
    return sorted(n for n in os.listdir(folder) if n.endswith(suffix))


def tags(path):
    return np.fromfile(path, np.uint64)


def test_a_cached_pass_serves_the_uncached_batches_and_decodes_each_file_once(
        folder, tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    plain = rotator(folder, num_workers=0)
    cached = rotator(folder, num_workers=0, decode_cache=cache)
    decoded = []
    read = streaming.Preparation.read
    monkeypatch.setattr(streaming.Preparation, 'read',
                        lambda self, files, i: decoded.append(i) or read(self, files, i))
    expected = passes(plain, epochs=1)
    decoded.clear()
    first = passes(cached, epochs=1)
    assert_same(first, expected)
    rows = cached.num_rows('train')
    assert sorted(decoded) == list(range(rows))                 # each file once
    (data,) = cache_files(cache, '.u8')
    (tag_file,) = cache_files(cache, '.tags')
    assert os.path.getsize(cache / data) == rows * 1 * 16 * 16
    assert np.all(tags(cache / tag_file) & PRESENT)
    decoded.clear()
    again = passes(cached, epochs=2)
    assert decoded == []                                        # read from the cache
    assert_same(again, passes(plain, epochs=2))
    # one cache per set (its files stat'ed once), whatever the pass
    assert cached.source('train', augment=False).dataset.cache is \
        cached.source('train').dataset.cache
    # valid and test: their own files, written as they are read
    assert_same(passes(cached, 'valid', 1), passes(plain, 'valid', 1))
    assert len(cache_files(cache, '.u8')) == 2


def test_a_row_written_in_part_is_decoded_again(folder, tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    plain = rotator(folder, num_workers=0)
    cached = rotator(folder, num_workers=0, decode_cache=cache)
    passes(plain, epochs=1)
    passes(cached, epochs=1)
    (data,) = cache_files(cache, '.u8')
    (tag_file,) = cache_files(cache, '.tags')
    with open(cache / data, 'r+b') as f:                       # row 3 torn: half zeros
        f.seek(3 * 256 + 128)
        f.write(bytes(128))
    with open(cache / tag_file, 'r+b') as f:                   # row 5's tag never written
        f.seek(5 * TAG_BYTES)
        f.write(bytes(TAG_BYTES))
    decoded = []
    read = streaming.Preparation.read
    monkeypatch.setattr(streaming.Preparation, 'read',
                        lambda self, files, i: decoded.append(i) or read(self, files, i))
    again = passes(cached, epochs=1)
    assert sorted(decoded) == [3, 5]
    assert_same(again, passes(plain, epochs=1))
    assert np.all(tags(cache / tag_file) & PRESENT)


def test_a_changed_file_gives_a_new_cache_and_workers_share_one(folder, tmp_path):
    cache = tmp_path / 'cache'
    expected = passes(rotator(folder, num_workers=0), epochs=1)
    assert_same(passes(rotator(folder, num_workers=2, decode_cache=cache), epochs=1), expected)
    pre = rotator(folder, num_workers=2, decode_cache=cache)    # rows written by workers
    assert np.all(tags(cache / cache_files(cache, '.tags')[0]) & PRESENT)
    assert_same(passes(pre, epochs=1), expected)
    for root, _, names in os.walk(folder):                      # every file changed
        for path in (os.path.join(root, n) for n in names):
            stat = os.stat(path)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    passes(rotator(folder, num_workers=0, decode_cache=cache), epochs=1)
    assert len(cache_files(cache, '.u8')) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (torch.distributed.is_available()
                         and torch.distributed.is_gloo_available()), reason='needs gloo')
def test_two_torchrun_ranks_sharing_a_cache_write_the_rows_one_process_writes(folder,
                                                                               tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, 'train'))
    from test_distributed import TORCHRUN, finish, start
    caches = {}
    for name, launch in (('one', [sys.executable]),
                         ('two', [*TORCHRUN, '--standalone', '--nproc_per_node=2'])):
        cache, out = tmp_path / f'cache_{name}', tmp_path / f'out_{name}'
        out.mkdir()
        finish([start([*launch, CHILD, folder, cache, out])], timeout=240)
        with open(out / 'epochs.json') as f:
            assert json.load(f) == [1, 2]
        caches[name] = {n: (cache / n).read_bytes() for n in os.listdir(cache)}
    assert sorted(caches['two']) == sorted(caches['one'])      # the same keys: one cache
    assert len(caches['one']) == 6           # train, valid and test (read at a new best)
    for name, content in caches['one'].items():
        assert caches['two'][name] == content, name             # row for row, tag for tag
        if name.endswith('.tags'):
            assert np.any(np.frombuffer(content, np.uint64) & PRESENT)


def test_a_net_trains_with_the_cache_as_without_it(folder, tmp_path):
    histories, weights = [], []
    for cache in (None, tmp_path / 'cache'):
        net = nn.NN(rotator(folder, num_workers=0, decode_cache=cache), 'images', 4, 8,
                    np.random.RandomState(0), verbose=False, device='cpu',
                    output_dir=str(tmp_path / f'out{len(histories)}'))
        net.add_convolution(4, (3, 3), (2, 2))
        net.add_hidden(16)
        net.add_logistic()
        history = net.train(nn.Adam(0.01), epochs=3, channels_last=False, progress=False)
        histories.append({k: v for k, v in history.items() if k != 'seconds'})
        weights.append(net.get_params())
    assert histories[0] == histories[1]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=0, atol=0)


def test_a_cache_that_cannot_be_written_warns_once_and_the_files_are_read(folder, tmp_path,
                                                                         monkeypatch):
    plain = rotator(folder, num_workers=0)
    cached = rotator(folder, num_workers=0, decode_cache=tmp_path / 'cache')

    def full(fd, data, offset):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(decoded.os, 'pwrite', full)
    with pytest.warns(UserWarning, match=r"decode_cache: cannot write .*No space left") as seen:
        served = passes(cached, epochs=1)
    assert len([w for w in seen if 'decode_cache' in str(w.message)]) == 1
    assert_same(served, passes(plain, epochs=1))
    (tag_file,) = cache_files(tmp_path / 'cache', '.tags')
    assert not np.any(tags(tmp_path / 'cache' / tag_file))          # nothing marked written


def test_what_cannot_be_cached_is_named(folder, tmp_path):
    with pytest.raises(ConfigError, match='decode_cache must be a folder path; received int'):
        rotator(folder, decode_cache=3)
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    with pytest.raises(ConfigError, match="decode_cache: cannot use the folder .*a_file"):
        rotator(folder, num_workers=0, decode_cache=blocker).source('train')
    sets = split_training_data(DirectoryLabeledImageSet(folder, stream=True).build(), 8,
                               60, 20, 20)

    class Jitter(StretchResizer):
        def training(self, image, size):
            return super().training(image, size)

    pre = Rotator360(sets, SHAPE, Jitter(), 0, num_workers=0, decode_cache=tmp_path / 'c')
    with pytest.raises(ConfigError, match='Jitter resizes training images its own way'):
        pre.source('train')
    stretched = Rotator360(sets, SHAPE, StochasticStretchResizer(np.random.RandomState(0),
                                                                 (0.9, 1.1)), 0,
                           num_workers=0, decode_cache=tmp_path / 'c')
    assert len(passes(stretched, epochs=1)[0]) > 0   # stretched on the device: cacheable
