"""Torch Datasets and DataLoaders given to predict, evaluate, get_outputs, the confusion
matrices and interpret: each gives what the same rows as arrays give; shares of
ranks (whole batches of an in-order DataLoader) put back in order are the whole."""

import numpy as np
import pytest
import torch
from torch.utils.data import (DataLoader, Dataset, DistributedSampler, IterableDataset,
                              TensorDataset)

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError
from pydnn2.evaluate.given import DatasetSource
from pydnn2.preprocess import DatasetPreprocessor, Rotator360, StretchResizer
from pydnn2.preprocess.sources import EpochPlan, Shard
from test_interpret import raw_images


class Items(Dataset):
    """Rows of ``x`` as items made by ``make(x_row, y)``."""

    def __init__(self, x, y, make):
        self.x, self.y, self.make = x, y, make

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.make(self.x[i], int(self.y[i]))


class Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y.tolist()))


def as_dicts(items):
    """A collate_fn of a user's own: ``({'images': (b, ...)}, y)``."""
    return ({'images': torch.stack([torch.as_tensor(x) for x, _ in items])},
            torch.tensor([y for _, y in items]))


@pytest.fixture(scope='module')
def trained(net_maker, digits_cached, tmp_path_factory):
    """The conftest small net trained one epoch, and the test set as arrays."""
    from pydnn2.preprocess import split_training_data
    sets = split_training_data(tuple(np.array(a) for a in digits_cached), 32, 60, 20, 20)
    net = net_maker(sets, tmp_path_factory.mktemp('given'))
    net.train(nn.Adam(0.01), epochs=1, verbose=False)
    return net, sets[2][0], sets[2][1]


DATA = {
    'TensorDataset (x, y)': lambda x, y: TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
    'TensorDataset (x,)': lambda x, y: TensorDataset(torch.from_numpy(x)),
    'items x alone': lambda x, y: Items(x, y, lambda r, c: r),
    'dict items': lambda x, y: Items(x, y, lambda r, c: ({'images': r}, c)),
    'DataLoader': lambda x, y: DataLoader(TensorDataset(torch.from_numpy(x),
                                                        torch.from_numpy(y)), batch_size=7),
    'DataLoader, collate_fn': lambda x, y: DataLoader(Items(x, y, lambda r, c: (r, c)),
                                                      batch_size=9, collate_fn=as_dicts),
    'IterableDataset': lambda x, y: Stream(x, y),
    'DataLoader of an IterableDataset': lambda x, y: DataLoader(Stream(x, y), batch_size=11),
}


@pytest.mark.parametrize('kind', DATA)
def test_datasets_and_loaders_predict_what_arrays_predict(trained, kind):
    net, x, y = trained
    classes, p = net.predict(x)
    got_classes, got = net.predict(DATA[kind](x, y))
    np.testing.assert_allclose(got, p, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got_classes, classes)


@pytest.mark.parametrize('kind', ['TensorDataset (x, y)', 'DataLoader, collate_fn',
                                  'IterableDataset'])
@pytest.mark.slow
def test_evaluate_outputs_confusion_and_interpret_take_labelled_datasets(trained, kind):
    net, x, y = trained
    data = DATA[kind](x, y)
    metrics = [nn.Accuracy(), nn.LogLoss()]
    assert net.evaluate(data, metrics) == pytest.approx(net.evaluate((x, y), metrics), abs=1e-6)
    np.testing.assert_allclose(net.get_outputs(data), net.get_outputs(x), atol=1e-6)
    matrix, mistakes = net.make_confusion_matrix(data, y, np.arange(len(y)))
    expected = net.make_confusion_matrix(x, y, np.arange(len(y)))
    np.testing.assert_array_equal(matrix, expected[0])
    assert mistakes == expected[1]
    interp, reference = net.interpret(data), net.interpret((x, y))
    np.testing.assert_array_equal(interp.confusion, reference.confusion)
    np.testing.assert_allclose(interp.losses, reference.losses, atol=1e-5)


def test_an_interpretation_of_a_map_style_dataset_shows_its_rows(trained):
    net, x, y = trained
    interp = net.interpret(DATA['dict items'](x, y))
    np.testing.assert_array_equal(interp.image(5), x[5])
    assert net.interpret(DATA['IterableDataset'](x, y)).inputs is None   # no rows by index


def test_a_dataset_preprocessor_evaluates_a_dataset_as_training_evaluated_it(tmp_path,
                                                                             digits_cached):
    images, classes, _ = digits_cached

    class Noisy(Dataset):                       # draws at random, as augmentation does
        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            row = self.rows[i]
            return torch.from_numpy(images[row]) + torch.rand(1, 8, 8), int(classes[row])

    valid = Noisy(np.arange(600, 800))
    pre = DatasetPreprocessor(Noisy(np.arange(600)), valid, num_workers=0)
    net = nn.NN(pre, 'images', 10, 32, np.random.RandomState(0), verbose=False,
                output_dir=str(tmp_path))
    net.add_hidden(16)
    net.add_logistic()
    history = net.train(nn.Adam(0.01), epochs=1)
    loss = net.evaluate(valid, nn.LogLoss())
    assert loss == net.evaluate('valid', nn.LogLoss())                  # the same items
    assert loss == pytest.approx(history['valid_loss'][-1], rel=1e-6)
    classes_of, _ = net.predict(DataLoader(valid, batch_size=64, num_workers=0))
    assert len(classes_of) == 200


def test_an_image_preprocessor_predicts_a_dataset_of_images_of_any_size(tmp_path):
    rng = np.random.RandomState(0)
    images, classes = raw_images(48, rng)
    from pydnn2.preprocess import split_training_data
    sets = split_training_data((images, classes), 8, 60, 20, 20)
    pre = Rotator360(sets, (16, 16), StretchResizer(), rng, rotation_range=(-10, 10))
    net = nn.NN(pre, 'images', 3, 8, np.random.RandomState(0), verbose=False, device='cpu',
                output_dir=str(tmp_path))
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_logistic()
    _, p = net.predict(images)
    _, from_items = net.predict(Items(images, classes, lambda r, c: (r, c)))
    _, from_loader = net.predict(DataLoader(Items(images, classes, lambda r, c: r),
                                            batch_size=4, collate_fn=lambda b: (list(b),)))
    np.testing.assert_allclose(from_items, p, atol=1e-6)
    np.testing.assert_allclose(from_loader, p, atol=1e-6)


def whole_and_shares(source, batch_size=5):
    plans = [EpochPlan(batch_size=batch_size, shard=Shard(rank, 2), whole_batches=False)
             for rank in (0, 1)]
    whole = list(source.batches(EpochPlan(batch_size=batch_size, whole_batches=False)))
    return whole, [list(source.batches(plan)) for plan in plans]


def test_shares_of_ranks_in_rank_order_are_the_rows_in_order(trained):
    net, x, y = trained
    for kind, data in [('rows of a dataset', DATA['TensorDataset (x, y)'](x[:23], y[:23])),
                       ('batches of a loader', DATA['DataLoader'](x[:23], y[:23]))]:
        source = DatasetSource(net.preprocessor, data, 'test', labelled=True)
        whole, shares = whole_and_shares(source)
        joined = [torch.cat([b[0]['images'] for b in share]) for share in shares]
        assert all(len(j) for j in joined), kind                     # both ranks work
        assert torch.equal(torch.cat(joined), torch.cat([b[0]['images'] for b in whole])), kind
    batches = [len(b[1]) for share in whole_and_shares(
        DatasetSource(net.preprocessor, DATA['DataLoader'](x[:23], y[:23]), 't'))[1]
        for b in share]
    assert batches == [7, 7, 7, 2]             # the loader's own batches, split whole


@pytest.mark.parametrize('kind', ['IterableDataset', 'DataLoader of an IterableDataset'])
def test_what_cannot_be_split_is_read_whole_by_rank_0(trained, kind):
    net, x, y = trained
    shuffled = DataLoader(TensorDataset(torch.from_numpy(x[:23])), batch_size=5, shuffle=True)
    for data in (DATA[kind](x[:23], y[:23]), shuffled):
        whole, (first, second) = whole_and_shares(DatasetSource(net.preprocessor, data, 't'))
        assert second == [] and sum(len(b[1]) for b in first) == 23


def test_a_loader_with_a_distributed_sampler_is_refused_when_rows_are_shared_out(trained):
    net, x, y = trained
    loader = DataLoader(TensorDataset(torch.from_numpy(x[:23])), batch_size=5,
                        sampler=DistributedSampler(range(23), num_replicas=2, rank=0))
    source = DatasetSource(net.preprocessor, loader, 'predict')
    assert len(list(source.batches(EpochPlan(batch_size=5, whole_batches=False)))) == 3
    with pytest.raises(ConfigError, match='has a DistributedSampler.*shuffle=False'):
        source.batches(EpochPlan(batch_size=5, shard=Shard(0, 2), whole_batches=False))


def test_bad_datasets_get_data_errors_naming_the_item_or_batch(trained):
    net, x, y = trained

    def broken(r, c):
        raise KeyError('no such image')

    with pytest.raises(DataError, match=r'item 0: expected \(x, y\) with classes'):
        net.evaluate(DATA['TensorDataset (x,)'](x, y), nn.Accuracy())
    with pytest.raises(DataError, match='item 0 raised KeyError'):
        net.predict(Items(x, y, broken))
    with pytest.raises(DataError, match='batch 1: expected classes in 0 .. 9; received class 21'):
        net.evaluate(DATA['DataLoader'](x, y + 12), nn.Accuracy())
    with pytest.raises(DataError, match='received no rows'):
        net.predict(TensorDataset(torch.zeros(0, 1, 8, 8)))
    with pytest.raises(DataError, match='received no rows'):
        net.predict(Stream(x[:0], y[:0]))
    with pytest.raises(DataError, match=r"dataset, batch 1: .* shape \(1, 4, 4\); expected"):
        net.predict(TensorDataset(torch.zeros(3, 1, 4, 4)))
    with pytest.raises(ConfigError, match="shard: expected True .* received 'yes'"):
        net.predict(x, shard='yes')
