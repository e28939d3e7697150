"""Tests of pydnn2.preprocess: the splitter and ArrayPreprocessor.

The oracles are written out here: pydnn's set sizes and shuffle transcribed from
its code, rows looked up through the file indices, and standardisation
``(x - mean_train) / std_train`` in float64.
"""

import copy

import numpy as np
import pytest
import torch

from pydnn2.errors import ConfigError, DataError
from pydnn2.preprocess import SET_NAMES, ArrayPreprocessor, Preprocessor, split_training_data


def labelled(n=100, shape=(3,), seed=0):
    """``(x, classes)`` whose row i holds the value i in every cell (so rows are traceable)."""
    x = np.broadcast_to(np.arange(n, dtype=np.float32).reshape((n,) + (1,) * len(shape)),
                        (n,) + shape).copy()
    classes = np.random.RandomState(seed).randint(0, 10, n)
    return x, classes


def files_of(sets):
    return [np.asarray(files) for _, _, files in sets]


# -- split_training_data -------------------------------------------------------------------

def pydnn_sizes(n, batch_size, train_per, valid_per, test_per):
    """pydnn's split_training_data sizes, transcribed (Python 2's / on ints is //)."""
    def calc_num(per):
        num = int(n * per / 100.0)
        num -= num % batch_size
        return num

    num_train, num_valid, num_test = calc_num(train_per), calc_num(valid_per), calc_num(test_per)
    num_train += (n - num_train - num_valid - num_test) // batch_size * batch_size
    return [num_train, num_valid, num_test]


def pydnn_order(n, seed=24680):
    """pydnn's _shuffle_lists on the row numbers, transcribed."""
    rng, rows = np.random.RandomState(seed), list(range(n))
    for i in range(n):
        j = rng.randint(n - 1)
        rows[i], rows[j] = rows[j], rows[i]
    return rows


@pytest.mark.parametrize('n, batch_size, percents', [
    (1797, 32, (60, 20, 20)), (1797, 64, (80, 10, 10)), (100, 1, (50, 30, 20)),
    (100, 4, (40, 60, 0)), (37, 1, (33.4, 33.3, 33.3)), (250, 7, (12.5, 80, 7.5)),
    (160, 4, (80, 15, 5)), (1000, 16, (100, 0, 0)), (30336, 64, (80, 15, 5))])
def test_split_sizes_are_pydnns(n, batch_size, percents):
    x, classes = labelled(n)
    sets = split_training_data((x, classes), batch_size, *percents)
    sizes = [len(y) for _, y, _ in sets]
    assert sizes == pydnn_sizes(n, batch_size, *percents)
    assert all(size % batch_size == 0 for size in sizes)            # whole batches only
    assert n - sum(sizes) < batch_size                              # what is left makes no batch
    assert [len(x) for x, _, _ in sets] == sizes


@pytest.mark.parametrize('n', [10, 17, 1797])
def test_split_order_is_pydnns_shuffle(n):
    x, classes = labelled(n)
    sets = split_training_data((x, classes), 1, 60, 20, 20)
    np.testing.assert_array_equal(np.concatenate(files_of(sets)), pydnn_order(n)[:n])
    assert files_of(split_training_data((x, classes), 1, 60, 20, 20))[0].tolist() == \
        files_of(sets)[0].tolist()                                  # the same every time


def test_split_leaves_the_given_data_alone(digits):
    images, classes, files = digits
    before = [a.copy() for a in digits]
    split_training_data((images, classes, files), 32, 60, 20, 20)
    for a, b in zip(before, digits):
        np.testing.assert_array_equal(a, b)


def test_split_sets_are_disjoint_and_rows_match_the_source(digits):
    images, classes, files = digits
    files = files * 7 + 3                      # file indices that are not row numbers
    sets = split_training_data((images, classes, files), 32, 50, 25, 25)
    chosen = np.concatenate(files_of(sets))
    assert len(np.unique(chosen)) == len(chosen)                   # disjoint
    assert len(chosen) == sum(pydnn_sizes(len(classes), 32, 50, 25, 25))
    assert set(chosen) <= set(files)
    for x, y, f in sets:
        rows = (f - 3) // 7                                        # back to source rows
        np.testing.assert_array_equal(x, images[rows])
        np.testing.assert_array_equal(y, classes[rows])
        assert y.dtype == np.int64 and f.dtype == np.int64


def test_split_is_reproducible_with_the_same_rng_and_differs_with_another(digits):
    def split(seed):
        return split_training_data(digits, 32, 60, 20, 20, rng=np.random.RandomState(seed))

    a, b, c = split(7), split(7), split(8)
    for part_a, part_b in zip(files_of(a), files_of(b)):
        np.testing.assert_array_equal(part_a, part_b)
    assert not np.array_equal(files_of(a)[0], files_of(c)[0])
    generator = split_training_data(digits, 32, 60, 20, 20, rng=np.random.default_rng(7))
    again = split_training_data(digits, 32, 60, 20, 20, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(files_of(generator)[1], files_of(again)[1])


def test_split_shuffle_false_keeps_order(digits):
    ordered = files_of(split_training_data(digits, 32, 60, 20, 20, shuffle=False))
    np.testing.assert_array_equal(np.concatenate(ordered),
                                  np.arange(sum(pydnn_sizes(len(digits[1]), 32, 60, 20, 20))))


def test_split_dict_x_keeps_channels_aligned(digits):
    images, classes, _ = digits
    shapes = np.stack([np.arange(len(classes)), -np.arange(len(classes))], 1).astype(np.float32)
    sets = split_training_data(({'images': images, 'shapes': shapes}, classes), 32, 60, 20, 20)
    for x, y, f in sets:
        assert set(x) == {'images', 'shapes'}
        np.testing.assert_array_equal(x['images'], images[f])
        np.testing.assert_array_equal(x['shapes'][:, 0], f)        # row i carries i
        np.testing.assert_array_equal(y, classes[f])


def test_split_list_of_arrays_of_different_sizes():
    rng = np.random.RandomState(3)
    images = [np.full((4 + i % 5, 3 + i % 3), i, np.uint8) for i in range(60)]
    classes = rng.randint(0, 4, 60)
    files = np.arange(60) + 1000
    sets = split_training_data((images, classes, files), 4, 50, 30, 20, rng=rng)
    for x, y, f in sets:
        assert isinstance(x, list) and len(x) == len(y) == len(f)
        for image, file_index in zip(x, f):
            assert image is images[file_index - 1000]
        np.testing.assert_array_equal(y, classes[f - 1000])


def test_split_accepts_whole_float_labels(digits):
    images, classes, files = digits
    sets = split_training_data((images, classes.astype(np.float64), files), 32, 60, 20, 20)
    for _, y, f in sets:
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, classes[f])


@pytest.mark.parametrize('percents', [(-1, 20, 20), (101, 0, 0), (60, 120, 0), (60, 20, -5),
                                      ('60', 20, 20), (None, 20, 20), (60, float('nan'), 20)])
def test_split_rejects_bad_percentages(percents):
    with pytest.raises(ConfigError, match='percentage'):
        split_training_data(labelled(), 1, *percents)


@pytest.mark.parametrize('percents', [(60, 30, 20), (100, 1, 0), (34, 33, 33.5), (60, 20, 10)])
def test_split_needs_percentages_adding_up_to_100(percents):
    with pytest.raises(ConfigError, match='must add up to 100'):
        split_training_data(labelled(), 1, *percents)


@pytest.mark.parametrize('n, batch_size, percents', [(10, 1, (0, 50, 50)),
                                                     (10, 4, (20, 40, 40))])
def test_split_refuses_an_empty_training_set(n, batch_size, percents):
    with pytest.raises(DataError, match='the train set is empty'):
        split_training_data(labelled(n), batch_size, *percents)


@pytest.mark.parametrize('n, batch_size, percents, empty', [
    (10, 1, (95, 5, 0), 'valid'), (40, 8, (80, 15, 5), 'valid'), (40, 8, (75, 20, 5), 'test')])
def test_split_warns_of_a_set_its_percentage_leaves_empty(n, batch_size, percents, empty):
    with pytest.warns(UserWarning, match=f'the {empty} set is empty.*goes on without it'):
        sets = split_training_data(labelled(n), batch_size, *percents)
    assert len(sets[SET_NAMES.index(empty)][1]) == 0


def test_split_allows_empty_validation_and_test_sets_at_0_percent():
    sets = split_training_data(labelled(10), 1, 80, 20, 0)
    assert len(sets[2][1]) == 0 and sets[2][0].shape == (0, 3)
    sets = split_training_data(labelled(10), 4, 100, 0, 0)
    assert [len(y) for _, y, _ in sets] == [8, 0, 0]


@pytest.mark.parametrize('batch_size', [0, -3, 2.0, True, '8'])
def test_split_rejects_a_bad_batch_size(batch_size):
    with pytest.raises(ConfigError, match='batch_size must be a positive integer'):
        split_training_data(labelled(), batch_size, 60, 20, 20)


def test_split_rejects_mismatched_lengths():
    x, classes = labelled(100)
    with pytest.raises(DataError, match='100 rows but classes has 99'):
        split_training_data((x, classes[:99]), 1, 60, 20, 20)
    with pytest.raises(DataError, match='file_indices 101'):
        split_training_data((x, classes, np.arange(101)), 1, 60, 20, 20)
    with pytest.raises(DataError, match='different numbers of rows'):
        split_training_data(({'a': x, 'b': x[:50]}, classes), 1, 60, 20, 20)


@pytest.mark.parametrize('data', [[np.zeros((4, 2))],
                                  (np.zeros((4, 2)), np.zeros(4), np.arange(4), 1),
                                  np.zeros((4, 2))])
def test_split_rejects_data_that_is_not_a_tuple_of_two_or_three(data):
    with pytest.raises(DataError, match=r'\(x, classes\)'):
        split_training_data(data, 1, 50, 50, 0)


@pytest.mark.parametrize('classes', [np.linspace(0, 9, 100), np.array(['a'] * 100),
                                     np.full(100, np.nan), np.ones((100, 2), int)])
def test_split_rejects_non_integer_labels(classes):
    with pytest.raises(DataError, match='classes must'):
        split_training_data((labelled()[0], classes), 1, 60, 20, 20)


def test_split_rejects_negative_labels():
    x, classes = labelled()
    classes[17] = -2
    with pytest.raises(DataError, match='>= 0; received -2'):
        split_training_data((x, classes), 1, 60, 20, 20)


# -- ArrayPreprocessor: statistics ---------------------------------------------------------

def standardised(x, train_x):
    """The oracle: (x - per-feature train mean) / one train std, in float64.

    The std is that of the training values around their per-feature means,
    so the served training set has a standard deviation of exactly 1.
    """
    train_x = np.asarray(train_x, np.float64)
    return (np.asarray(x, np.float64) - train_x.mean(0)) / (train_x - train_x.mean(0)).std()


def test_served_sets_are_standardised_with_training_statistics(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    train_x = digits_sets[0][0]
    for (x, y), (raw, raw_y, _) in zip((pre.get_train(), pre.get_valid(), pre.get_test()),
                                       digits_sets):
        assert x['images'].dtype == torch.float32 and y.dtype == torch.int64
        np.testing.assert_allclose(x['images'].numpy(), standardised(raw, train_x),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y.numpy(), raw_y)
    served = pre.get_train()[0]['images'].numpy().astype(np.float64)
    np.testing.assert_allclose(served.mean(0), 0, atol=1e-5)      # per feature


@pytest.mark.parametrize('name', ['images', 'shapes'])
def test_served_training_set_has_unit_std(two_channel_sets, name):
    served = ArrayPreprocessor(two_channel_sets).get_train()[0][name].numpy()
    np.testing.assert_allclose(served.astype(np.float64).std(), 1, rtol=1e-4)


def test_all_train_is_the_three_sets_standardised_with_train_statistics(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    x, y = pre.get_all_train()
    raw = np.concatenate([part[0] for part in digits_sets])
    np.testing.assert_allclose(x['images'].numpy(), standardised(raw, digits_sets[0][0]),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), np.concatenate([part[1] for part in digits_sets]))


def test_statistics_come_from_the_training_set_only(digits_sets):
    train, valid, test = digits_sets
    changed = (train,
               (valid[0] * 50 + 7, valid[1], valid[2]),
               (test[0][::-1] - 100, test[1][::-1], test[2][::-1]))
    a, b = ArrayPreprocessor(digits_sets), ArrayPreprocessor(changed)
    assert torch.equal(a.get_train()[0]['images'], b.get_train()[0]['images'])
    sa, sb = a.state_dict(), b.state_dict()
    assert torch.equal(sa['mean']['images'], sb['mean']['images'])
    assert sa['std'] == sb['std']
    # and the changed valid set is served through the unchanged statistics
    np.testing.assert_allclose(b.get_valid()[0]['images'].numpy(),
                               standardised(changed[1][0], train[0]), rtol=1e-5, atol=1e-4)


def test_changing_training_rows_changes_the_statistics(digits_sets):
    """The counterpart of the test above: the statistics do depend on the training set."""
    train, valid, test = digits_sets
    a = ArrayPreprocessor(digits_sets)
    b = ArrayPreprocessor(((train[0] * 2 + 1, train[1], train[2]), valid, test))
    assert not torch.equal(a.state_dict()['mean']['images'], b.state_dict()['mean']['images'])
    assert a.state_dict()['std'] != b.state_dict()['std']


def test_preprocess_of_raw_rows_equals_the_served_rows(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    for raw, (served, _) in zip([part[0] for part in digits_sets],
                                (pre.get_train(), pre.get_valid(), pre.get_test())):
        assert torch.equal(pre.preprocess(raw)['images'], served['images'])
    one = pre.preprocess(digits_sets[1][0][5:6])['images']
    assert torch.equal(one[0], pre.get_valid()[0]['images'][5])


def test_normalize_false_serves_the_raw_values_as_float32(digits_sets):
    pre = ArrayPreprocessor(digits_sets, normalize=False)
    x, _ = pre.get_train()
    assert x['images'].dtype == torch.float32
    np.testing.assert_array_equal(x['images'].numpy(), digits_sets[0][0].astype(np.float32))


def test_a_constant_channel_is_not_divided_by_zero():
    x = np.full((20, 2), 3.0)
    y = np.arange(20) % 2
    sets = split_training_data((x, y), 1, 50, 50, 0)
    served = ArrayPreprocessor(sets).get_train()[0]['images'].numpy()
    np.testing.assert_array_equal(served, np.zeros_like(served))


def test_raw_accessors_return_the_sets_as_given(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    for got, want in zip(pre.get_raw_x(), digits_sets):
        np.testing.assert_array_equal(got, want[0])
    for got, want in zip(pre.get_raw_y(), digits_sets):
        np.testing.assert_array_equal(got, want[1])
    for got, want in zip(pre.get_files(), digits_sets):
        np.testing.assert_array_equal(got, want[2])


# -- ArrayPreprocessor: channels and shapes ------------------------------------------------

@pytest.fixture
def two_channel_sets(digits):
    images, classes, files = digits
    rng = np.random.RandomState(5)
    shapes = rng.standard_normal((len(classes), 3)) * [1, 10, 100] + [0, 5, -50]
    shapes = shapes.astype(np.float32)
    return split_training_data(({'images': images, 'shapes': shapes}, classes, files),
                               32, 60, 20, 20)


def test_dict_channels_are_standardised_separately(two_channel_sets):
    pre = ArrayPreprocessor(two_channel_sets)
    assert set(pre.channels) == {'images', 'shapes'}
    assert pre.shape_for('images') == (1, 8, 8) and pre.shape_for('shapes') == (3,)
    train_x = two_channel_sets[0][0]
    for (x, _), (raw, _, _) in zip((pre.get_train(), pre.get_valid()), two_channel_sets):
        for name in ('images', 'shapes'):
            np.testing.assert_allclose(x[name].numpy(), standardised(raw[name], train_x[name]),
                                       rtol=1e-5, atol=1e-4)
    predicted = pre.preprocess(two_channel_sets[2][0])
    assert torch.equal(predicted['shapes'], pre.get_test()[0]['shapes'])
    assert pre.get_raw_x()[0] is not None and set(pre.get_raw_x()[0]) == {'images', 'shapes'}


def test_list_of_equal_images_is_stacked(digits):
    images, classes, files = digits
    as_list = [image[0] for image in images]                       # (8, 8) each
    sets = split_training_data((as_list, classes, files), 32, 60, 20, 20)
    pre = ArrayPreprocessor(sets)
    assert pre.shape_for('images') == (8, 8)
    stacked = np.stack(sets[0][0])
    np.testing.assert_allclose(pre.get_train()[0]['images'].numpy(),
                               standardised(stacked, stacked), rtol=1e-5, atol=1e-5)


def test_list_of_images_with_an_empty_test_set(digits):
    images, classes, files = digits
    as_list = [image[0] for image in images]
    sets = split_training_data((as_list, classes, files), 32, 80, 20, 0)
    pre = ArrayPreprocessor(sets)
    assert pre.get_test()[0]['images'].shape == (0, 8, 8)


def test_unknown_channel_names_the_channel_and_the_available_ones(two_channel_sets):
    pre = ArrayPreprocessor(two_channel_sets)
    with pytest.raises(DataError) as info:
        pre.shape_for('colour')
    message = str(info.value)
    assert "'colour'" in message and "'images'" in message and "'shapes'" in message


@pytest.mark.parametrize('rows', [np.zeros((3, 1, 7, 7)), np.zeros((3, 8, 8)),
                                  np.zeros((1, 8, 8)), np.zeros((3, 64))])
def test_preprocess_rejects_rows_of_the_wrong_shape(digits_sets, rows):
    pre = ArrayPreprocessor(digits_sets)
    with pytest.raises(DataError, match=r"channel 'images' of the data to predict has rows "
                                        r"of shape .*expected \(1, 8, 8\)"):
        pre.preprocess(rows)


def test_preprocess_rejects_missing_or_extra_channels(two_channel_sets):
    pre = ArrayPreprocessor(two_channel_sets)
    x = two_channel_sets[2][0]
    with pytest.raises(DataError, match='expected'):
        pre.preprocess({'images': x['images']})
    with pytest.raises(DataError, match='expected'):
        pre.preprocess({**x, 'extra': x['shapes']})


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize('which', [0, 1, 2])
@pytest.mark.parametrize('channel', ['images', 'shapes'])
def test_nan_or_inf_in_any_set_names_the_channel_and_the_set(two_channel_sets, bad, which,
                                                             channel):
    sets = [list(part) for part in two_channel_sets]
    x = {name: value.copy() for name, value in sets[which][0].items()}
    x[channel].flat[7] = bad
    sets[which][0] = x
    with pytest.raises(DataError) as info:
        ArrayPreprocessor([tuple(part) for part in sets])
    set_name = ('train', 'valid', 'test')[which]
    assert f"channel '{channel}' of the {set_name} set" in str(info.value)
    assert 'NaN or infinite' in str(info.value)


def test_nan_in_data_to_predict_is_refused(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    rows = digits_sets[2][0][:4].copy()
    rows[2, 0, 3, 3] = np.nan
    with pytest.raises(DataError, match=r"'images' of the data to predict .*first in row 2"):
        pre.preprocess(rows)


def test_labels_are_checked_for_every_set(digits_sets):
    sets = [list(part) for part in digits_sets]
    sets[1][1] = sets[1][1].astype(np.float64) + 0.5
    with pytest.raises(DataError, match='valid labels must be integers'):
        ArrayPreprocessor([tuple(p) for p in sets])
    sets = [list(part) for part in digits_sets]
    sets[0][1] = sets[0][1][:-1]
    with pytest.raises(DataError, match='train set has'):
        ArrayPreprocessor([tuple(p) for p in sets])


# -- ArrayPreprocessor: state and new data -------------------------------------------------

def test_state_dict_round_trip_preprocesses_identically(two_channel_sets):
    pre = ArrayPreprocessor(two_channel_sets)
    state = copy.deepcopy(pre.state_dict())
    loaded = ArrayPreprocessor.from_state(state)
    assert isinstance(loaded, Preprocessor)
    assert loaded.channels == pre.channels
    assert loaded.shape_for('shapes') == pre.shape_for('shapes')
    raw = two_channel_sets[1][0]
    a, b = pre.preprocess(raw), loaded.preprocess(raw)
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name])


def test_state_dict_round_trip_through_a_weights_only_file(digits_sets, tmp_path):
    pre = ArrayPreprocessor(digits_sets)
    torch.save(pre.state_dict(), tmp_path / 'state.pt')
    loaded = ArrayPreprocessor.from_state(torch.load(tmp_path / 'state.pt', weights_only=True))
    raw = digits_sets[2][0]
    assert torch.equal(pre.preprocess(raw)['images'], loaded.preprocess(raw)['images'])


@pytest.mark.parametrize('method', ['get_train', 'get_valid', 'get_test', 'get_all_train',
                                    'get_raw_x', 'get_raw_y', 'get_files'])
def test_a_loaded_preprocessor_has_no_data_and_says_how_to_attach_it(digits_sets, method):
    loaded = ArrayPreprocessor.from_state(ArrayPreprocessor(digits_sets).state_dict())
    assert not loaded.has_data()
    with pytest.raises(DataError, match=r'set_data\(split_training_data'):
        getattr(loaded, method)()


def test_set_data_on_a_loaded_preprocessor_keeps_its_statistics(digits_sets, digits):
    pre = ArrayPreprocessor(digits_sets)
    loaded = ArrayPreprocessor.from_state(pre.state_dict())
    other = split_training_data(digits, 32, 40, 30, 30, rng=np.random.RandomState(9))
    loaded.set_data(other)
    assert loaded.has_data()
    np.testing.assert_allclose(loaded.get_train()[0]['images'].numpy(),
                               standardised(other[0][0], digits_sets[0][0]),
                               rtol=1e-5, atol=1e-4)


def test_set_data_keeps_the_statistics_unless_refit(digits_sets, digits):
    pre = ArrayPreprocessor(digits_sets)
    before = pre.get_train()[0]['images'].clone()
    mean = pre.state_dict()['mean']['images'].clone()
    images, classes, files = digits
    other = split_training_data((images * 3 + 2, classes, files), 32, 40, 30, 30,
                                rng=np.random.RandomState(2))
    pre.set_data(other)
    assert torch.equal(pre.state_dict()['mean']['images'], mean)
    served = pre.get_train()[0]['images']
    assert served.shape[0] == len(other[0][1]) != before.shape[0]   # the cache was dropped
    np.testing.assert_allclose(served.numpy(), standardised(other[0][0], digits_sets[0][0]),
                               rtol=1e-5, atol=1e-4)
    pre.set_data(other, refit=True)
    assert not torch.equal(pre.state_dict()['mean']['images'], mean)
    np.testing.assert_allclose(pre.get_train()[0]['images'].numpy(),
                               standardised(other[0][0], other[0][0]), rtol=1e-5, atol=1e-4)


def test_set_data_refuses_sets_of_another_shape_without_refit(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    cut = tuple((x[:, :, :7, :7], y, f) for x, y, f in digits_sets)
    with pytest.raises(DataError, match=r'expected \(1, 8, 8\)'):
        pre.set_data(cut)
    assert pre.get_train()[0]['images'].shape[1:] == (1, 8, 8)     # old data kept


def test_a_refused_refit_leaves_the_preprocessor_unchanged(digits_sets):
    pre = ArrayPreprocessor(digits_sets)
    raw = digits_sets[2][0][:10]
    before = pre.preprocess(raw)['images']
    train, valid, test = digits_sets
    bad = ((train[0] * 3 + 1, train[1], train[2]), (valid[0][:, :, :7, :7], valid[1], valid[2]),
           test)
    with pytest.raises(DataError):
        pre.set_data(bad, refit=True)
    assert torch.equal(pre.preprocess(raw)['images'], before)


@pytest.mark.parametrize('data', [None, (1, 2), ((np.zeros((2, 1)), np.zeros(2)),) * 2])
def test_set_data_needs_three_sets(digits_sets, data):
    pre = ArrayPreprocessor(digits_sets)
    with pytest.raises(DataError, match='three sets'):
        pre.set_data(data)


def test_empty_train_set_is_refused_by_the_preprocessor(digits_sets):
    train, valid, test = digits_sets
    with pytest.raises(DataError, match='train set is empty'):
        ArrayPreprocessor(((train[0][:0], train[1][:0]), valid, test))


def test_channel_must_be_a_string(digits_sets):
    with pytest.raises(DataError, match='channel must be a string'):
        ArrayPreprocessor(digits_sets, channel=3)
