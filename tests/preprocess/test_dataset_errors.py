"""The bad-input catalogue of DatasetPreprocessor: each is a DataError naming the dataset,
the item or batch, and what was expected against what was received, raised through
DataLoader workers without their wrapper text, and the files already written stay
whole.

The faults appear in the second epoch (a callback lays a file the dataset looks for
after the first), so that a checkpoint and a best net are on disk when they strike.
"""

import multiprocessing
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from pydnn2 import files
from pydnn2 import neuralnet as nn
from pydnn2.errors import DataError
from pydnn2.preprocess import DatasetPreprocessor

sys.path.insert(0, os.path.dirname(__file__))
from digit_datasets import DigitItems, DigitStream, split

TRAIN, VALID, _ = split(train=256, valid=64)


def bad_shape(x, y):
    return torch.zeros(1, 9, 8), y


def bad_dtype(x, y):
    return x.long(), y


def bad_class(x, y):
    return x, 10


def nan(x, y):
    x = x.clone()
    x[0, 3, 4] = float('nan')
    return x, y


def inf(x, y):
    x = x.clone()
    x[0, 0, 0] = float('inf')
    return x, y


def raises(x, y):
    raise KeyError('cannot open scan_0037.png')


FAULTS = {
    'shape': (bad_shape, ['channel \'images\'', 'expected float values of shape (1, 8, 8)',
                          'received torch.float32 of shape (1, 9, 8)']),
    'dtype': (bad_dtype, ['expected float values of shape (1, 8, 8)',
                          'received torch.int64 of shape (1, 8, 8)']),
    'class': (bad_class, ['has class 10; expected a class in 0 .. 9']),
    'nan': (nan, ['channel \'images\' holds NaN or infinite values']),
    'inf': (inf, ['channel \'images\' holds NaN or infinite values']),
    'raises': (raises, ["raised KeyError: 'cannot open scan_0037.png'"]),
}


class Poisoned(Dataset):
    """DigitItems whose item ``bad`` goes wrong (``fault``) once ``trigger`` exists."""

    def __init__(self, fault, trigger, bad=37):
        self.items, self.fault, self.trigger, self.bad = DigitItems(TRAIN), fault, trigger, bad

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        x, y = self.items[index]
        if index == self.bad and os.path.exists(self.trigger):
            return self.fault(x, y)
        return x, y


class PoisonedStream(IterableDataset):
    """DigitStream (in order) whose item ``bad`` goes wrong once ``trigger`` exists."""

    def __init__(self, fault, trigger, bad=37):
        self.stream, self.fault, self.trigger, self.bad = DigitStream(TRAIN, False), fault, \
            trigger, bad

    def __iter__(self):
        for index, (x, y) in enumerate(self.stream):
            yield self.fault(x, y) if index == self.bad and os.path.exists(self.trigger) \
                else (x, y)


class Trigger(nn.Callback):
    """Lays the trigger file once the first epoch has ended."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, net, logs):
        open(self.path, 'w').close()


def small_net(pre, folder):
    net = nn.NN(pre, 'images', 10, 32, np.random.RandomState(5), name='faulty',
                output_dir=str(folder), verbose=False)
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_hidden(16)
    net.add_logistic()
    return net


def train_until_it_fails(train, folder, trigger):
    """Train 3 epochs with a checkpoint each; returns the DataError and the files that
    were on disk when it struck (each must still read back whole)."""
    pre = DatasetPreprocessor(train, DigitItems(VALID), num_workers=2)
    net = small_net(pre, folder)
    with pytest.raises(DataError) as caught:
        net.train(nn.Adam(0.003), epochs=3, checkpoint_every=1, channels_last=False,
                  callbacks=[Trigger(trigger)])
    checkpoint = folder / 'faulty_checkpoint_0001.pt'
    files.read_file(str(checkpoint), 'checkpoint')            # whole: its checksum holds
    assert nn.load(str(folder / 'faulty_best_net.pt')).num_classes == 10
    assert net.history['epoch'] == [1]
    return str(caught.value)


@pytest.mark.parametrize('fault', sorted(FAULTS))
def test_a_bad_item_of_a_map_style_dataset_is_named_cleanly(fault, tmp_path):
    make, expected = FAULTS[fault]
    message = train_until_it_fails(Poisoned(make, str(tmp_path / 'on')), tmp_path,
                                   tmp_path / 'on')
    assert message.startswith('the training dataset, item 37')
    for part in expected:
        assert part in message
    assert 'Caught' not in message and 'Traceback' not in message and 'worker' not in message


@pytest.mark.parametrize('fault', ['shape', 'class', 'nan', 'raises'])
@pytest.mark.slow
def test_a_bad_item_of_a_stream_is_named_cleanly(fault, tmp_path):
    make, expected = FAULTS[fault]
    message = train_until_it_fails(PoisonedStream(make, str(tmp_path / 'on')), tmp_path,
                                   tmp_path / 'on')
    assert message.startswith('the training dataset, item 37')
    for part in expected:
        assert part in message
    assert 'Caught' not in message and 'Traceback' not in message


def test_a_pass_left_part_way_ends_its_workers_with_the_error(tmp_path):
    """The workers of a stream abandoned at a bad item are gone when train raises (they
    used to stay until the iterator was collected, then held it 5 s each)."""
    make, _ = FAULTS['shape']
    pre = DatasetPreprocessor(PoisonedStream(make, str(tmp_path / 'on')), num_workers=2)
    net = small_net(pre, tmp_path)
    before = {p.pid for p in multiprocessing.active_children()}
    with pytest.raises(DataError, match='item 37'):
        net.train(nn.Adam(0.003), epochs=3, channels_last=False,
                  callbacks=[Trigger(str(tmp_path / 'on'))])
    assert net.history['epoch'] == [1]                # the first pass ended whole
    left = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert left == []


class Empty(IterableDataset):
    def __iter__(self):
        return iter(())


@pytest.mark.parametrize('empty', [
    lambda: DigitItems([]), lambda: Empty(), lambda: DataLoader(Empty(), batch_size=4)])
def test_an_empty_training_set_is_refused_when_it_is_given(empty):
    with pytest.raises(DataError, match='the training dataset is empty; it needs at least one'):
        DatasetPreprocessor(empty(), num_workers=0)


def test_something_that_is_no_dataset_is_refused():
    with pytest.raises(DataError, match='the validation dataset must be a torch Dataset, '
                                        'IterableDataset or DataLoader; received list'):
        DatasetPreprocessor(DigitItems(TRAIN), [1, 2, 3], num_workers=0)


def test_a_collate_fn_whose_batch_does_not_fit_is_named_with_its_batch(tmp_path):
    def collate(items):                 # drops a row of classes on batches of 32
        x = torch.stack([x for x, _ in items])
        y = torch.tensor([y for _, y in items])
        return x, (y[:-1] if len(items) == 32 else y)
    loader = DataLoader(DigitItems(TRAIN), num_workers=2, collate_fn=collate)
    pre = DatasetPreprocessor(loader, DigitItems(VALID))
    with pytest.raises(DataError) as caught:
        small_net(pre, tmp_path).train(nn.Adam(0.003), epochs=1, channels_last=False)
    assert str(caught.value) == ('the training dataset, batch 1: expected one class per row '
                                 '(a 1-d y as long as x); received y of shape (31,) for [32] '
                                 'rows')


def test_a_collate_fn_that_raises_is_named_with_its_batch(tmp_path):
    def collate(items):
        raise ValueError('images of different sizes')
    loader = DataLoader(DigitItems(TRAIN), num_workers=2, collate_fn=collate)
    with pytest.raises(DataError, match=r'^the training dataset, the batch of item 0 alone: '
                                        'collate_fn raised ValueError: images of different sizes'):
        DatasetPreprocessor(loader)


class Raising(IterableDataset):
    def __iter__(self):
        yield from DigitStream(TRAIN[:40], False)
        raise OSError('the share went away')


def test_an_iterable_dataloader_that_raises_in_its_worker_is_named_cleanly():
    # (the statistics' pass over the training set meets it)
    with pytest.raises(DataError) as caught:
        DatasetPreprocessor(DataLoader(Raising(), batch_size=16, num_workers=1))
    assert str(caught.value) == ('the training dataset, batch 3: the DataLoader raised '
                                 'OSError: the share went away')


class SelfSharded(IterableDataset):
    """Yields only its worker's share: wrong under shards='pydnn2'."""

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        for index, item in enumerate(DigitStream(TRAIN, False)):
            if info is None or index % info.num_workers == info.id:
                yield item


def test_a_stream_that_shards_itself_under_pydnn2_sharing_is_caught():
    with pytest.raises(DataError, match=r"yielded different streams to its readers \(rank 0, "
                                        r"worker \d: 128 items; rank 0, worker \d: 128 items\)"
                                        ".*needs shards='dataset'"):
        DatasetPreprocessor(SelfSharded(), num_workers=2)


def test_a_stream_that_does_not_shard_itself_under_dataset_sharing_is_caught():
    with pytest.raises(DataError, match="yielded the same 256 items to each of its 2 readers"):
        DatasetPreprocessor(DigitStream(TRAIN), num_workers=2, shards='dataset')


class Doomed(Dataset):
    """DigitItems; once ``trigger`` exists, the worker reading item 37 writes its pid to
    ``pid_file`` and waits (at most a minute) to be killed."""

    def __init__(self, trigger, pid_file):
        self.items, self.trigger, self.pid_file = DigitItems(TRAIN), trigger, pid_file

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        if index == 37 and os.path.exists(self.trigger) and \
                torch.utils.data.get_worker_info() is not None:
            with open(self.pid_file + '.tmp', 'w') as f:
                f.write(str(os.getpid()))
            os.replace(self.pid_file + '.tmp', self.pid_file)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.05)
        return self.items[index]


def kill_when_written(pid_file, killed):
    deadline = time.monotonic() + 120
    while not os.path.exists(pid_file) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(pid_file) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
def test_a_worker_killed_by_the_system_is_a_data_error(tmp_path):
    trigger, pid_file = tmp_path / 'on', str(tmp_path / 'worker.pid')
    killed = []
    killer = threading.Thread(target=kill_when_written, args=(pid_file, killed), daemon=True)
    killer.start()
    message = train_until_it_fails(Doomed(str(trigger), pid_file), tmp_path, trigger)
    killer.join(5)
    assert killed, 'the worker was never killed'
    assert message.startswith('the training dataset')
    assert f'DataLoader worker (pid {killed[0]})' in message
    assert 'out of memory?' in message
