"""interpret(): every number against an independent computation (scikit-learn's
metrics, log losses from predict's probabilities, pydnn's fair-share arithmetic),
on the named sets, an (x, classes) pair and an image-preprocessor net."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError
from pydnn2.evaluate.inference import evaluate_set, named_set
from pydnn2.evaluate.interpret import (ConfusedPair, Interpretation, TopLoss, class_statistics,
                                       confused_pairs, input_row, interpret)
from pydnn2.preprocess import Rotator360, StretchResizer, split_training_data

NAMES = 'zero one two three four five six seven eight nine'.split()
SETS = {'train': 0, 'valid': 1, 'test': 2}


@pytest.fixture(scope='module')
def digits_net(net_maker, digits_cached, tmp_path_factory):
    """The conftest small net on the digits (60/20/20), trained 3 epochs with Adam(0.01)."""
    sets = split_training_data(tuple(np.array(a) for a in digits_cached), 32, 60, 20, 20)
    net = net_maker(sets, tmp_path_factory.mktemp('interpret'))
    net.train(nn.Adam(0.01), epochs=3, verbose=False)
    return net


def raw_images(n, rng):
    """``n`` dark rectangles on white of random sizes; the class sets the rectangle's
    width, so that a net can learn it, but one label in four is random: some
    mistakes are certain."""
    images, classes = [], np.arange(n) % 3
    for c in classes:
        h, w = rng.randint(10, 30, size=2)
        image = np.full((h, w), 255, np.uint8)
        image[h // 4: h - h // 4, : max(2, (c + 1) * w // 4)] = rng.randint(0, 100)
        images.append(image)
    noisy = rng.rand(n) < 0.25
    classes[noisy] = rng.randint(0, 3, noisy.sum())
    return images, classes


@pytest.fixture(scope='module')
def image_net(tmp_path_factory):
    """A 3-class net on raw images of different sizes through Rotator360, trained 2 epochs."""
    rng = np.random.RandomState(0)
    sets = split_training_data(raw_images(90, rng), 8, 60, 20, 20)
    pre = Rotator360(sets, (16, 16), StretchResizer(), rng, rotation_range=(-10, 10))
    net = nn.NN(pre, 'images', 3, 8, np.random.RandomState(0), verbose=False, device='cpu',
                output_dir=str(tmp_path_factory.mktemp('image_net')))
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_hidden(8)
    net.add_logistic()
    net.train(nn.Adam(0.01), epochs=2, verbose=False)
    return net


def check_against_references(interp, net, raw_x, classes, files=None, top=20):
    """Every array of ``interp`` against scikit-learn, predict and hand computation."""
    k = net.num_classes
    predicted, probabilities = net.predict(raw_x)
    np.testing.assert_array_equal(interp.actual, classes)
    np.testing.assert_array_equal(interp.predicted, predicted)
    np.testing.assert_allclose(interp.probabilities, probabilities, atol=1e-6)
    losses = -np.log(probabilities[np.arange(len(classes)), classes].astype(np.float64))
    np.testing.assert_allclose(interp.losses, losses, rtol=1e-4, atol=1e-5)

    matrix = confusion_matrix(classes, predicted, labels=range(k))
    np.testing.assert_array_equal(interp.confusion, matrix)
    precision, recall, _, support = precision_recall_fscore_support(
        classes, predicted, labels=range(k), zero_division=np.nan)
    np.testing.assert_allclose(interp.precision, precision, equal_nan=True)
    np.testing.assert_allclose(interp.recall, recall, equal_nan=True)
    np.testing.assert_array_equal(interp.support, support)
    np.testing.assert_array_equal(interp.predicted_counts, np.bincount(predicted, minlength=k))
    check_fair_shares(interp, matrix)
    check_pairs_and_losses(interp, matrix, losses, files, top)


def check_fair_shares(interp, matrix):
    """pydnn's analyze_confusion_matrix arithmetic, written out again."""
    bad = matrix.sum(1) - np.diag(matrix)
    total, total_bad = matrix.sum(), bad.sum()
    assert total_bad > 0 and interp.num_errors == total_bad
    fair = matrix.sum(1) / total
    contribution = bad / total_bad
    np.testing.assert_array_equal(interp.errors, bad)
    np.testing.assert_allclose(interp.data_share, fair)
    np.testing.assert_allclose(interp.error_share, contribution)
    present = fair > 0
    np.testing.assert_allclose(interp.fair_share_ratio[present],
                               contribution[present] / fair[present])
    assert np.all(np.isnan(interp.fair_share_ratio[~present]))
    assert interp.error_rate == pytest.approx(total_bad / total)


def check_pairs_and_losses(interp, matrix, losses, files, top):
    pairs = sorted(((-int(matrix[a, p]), a, p) for a in range(len(matrix))
                    for p in range(len(matrix)) if a != p and matrix[a, p]))
    assert interp.confused_pairs == [ConfusedPair(a, p, -c) for c, a, p in pairs][:top]
    order = sorted(range(len(losses)), key=lambda r: (-interp.losses[r], r))[:top]
    assert [t.row for t in interp.top_losses] == order
    for t in interp.top_losses:
        assert t.loss == pytest.approx(losses[t.row], rel=1e-4, abs=1e-5)
        assert t.actual == interp.actual[t.row] and t.predicted == interp.predicted[t.row]
        assert t.p_predicted == pytest.approx(interp.probabilities[t.row].max())
        assert t.p_actual == pytest.approx(interp.probabilities[t.row, t.actual])
        assert t.file == (None if files is None else files[t.row])
    assert all(a.loss >= b.loss for a, b in zip(interp.top_losses, interp.top_losses[1:]))


@pytest.mark.parametrize('name', ['valid', 'train', 'test'])
def test_named_sets_match_sklearn_predict_and_hand_computed_losses(digits_net, name):
    pre = digits_net.preprocessor
    index = SETS[name]
    interp = interpret(digits_net, name)
    files = pre.get_files()[index]
    check_against_references(interp, digits_net, pre.get_raw_x()[index], pre.get_raw_y()[index],
                             files)
    assert interp.set_name == name and interp.files.tolist() == files.tolist()
    mean_loss, error = evaluate_set(digits_net, *named_set(digits_net, name))
    assert interp.mean_loss == pytest.approx(mean_loss, rel=1e-5)   # training's own numbers
    assert interp.error_rate == pytest.approx(error)


def test_an_x_classes_pair_is_interpreted_without_files(digits_net):
    pre = digits_net.preprocessor
    x, y = pre.get_raw_x()[2][:150], pre.get_raw_y()[2][:150]
    interp = interpret(digits_net, (x, y), top=5)
    check_against_references(interp, digits_net, x, y, top=5)
    assert interp.set_name == 'given' and interp.files is None
    assert len(interp.top_losses) == 5 and len(interp.confused_pairs) <= 5
    np.testing.assert_array_equal(interp.image(3), x[3])


def test_an_image_preprocessor_net_with_images_of_many_sizes(image_net):
    pre = image_net.preprocessor
    raw = pre.get_raw_x()[1]                       # {'images': list of (H, W) uint8}
    interp = interpret(image_net, 'valid', class_names=['narrow', 'middle', 'wide'])
    check_against_references(interp, image_net, raw, pre.get_raw_y()[1], pre.get_files()[1])
    assert len({raw['images'][r].shape for r in range(len(raw['images']))}) > 5
    for row in (0, 7):
        np.testing.assert_array_equal(interp.image(row), raw['images'][row])
    assert interp.class_names == ['narrow', 'middle', 'wide']
    pair = interpret(image_net, (raw, pre.get_raw_y()[1]))
    np.testing.assert_array_equal(pair.confusion, interp.confusion)


def test_text_html_and_report_show_the_worst_class_with_its_numbers(digits_net):
    interp = interpret(digits_net, 'valid', class_names=NAMES)
    worst = int(np.argmax(interp.errors))
    name, ratio = NAMES[worst], interp.fair_share_ratio[worst]
    text = repr(interp)
    assert text.startswith(f'Interpretation of the valid set: {interp.num_rows} rows, 10 classes,'
                           f' {interp.num_errors} wrong')
    assert f'\n{name} ' in text and f'{ratio:.2f}' in text
    page = interp._repr_html_()
    assert page.count('<table>') == 3 and f'<td>{name}</td>' in page
    report = interp.report()
    section = report[report.index(f'class {name}:'):]
    assert section.startswith(f'class {name}: {interp.support[worst]} rows, '
                              f'{interp.errors[worst]} wrong')
    assert f'({ratio:.2f} times fair share)' in section
    first, count = interp.most_confused_with(worst)[0]
    assert f'most often confused with: {NAMES[first]} ({count})' in section
    assert count == max(c for i, c in enumerate(interp.confusion[worst]) if i != worst)


def test_from_predictions_on_a_hand_made_example():
    probabilities = [[.7, .2, .1], [.1, .6, .3], [.5, .4, .1], [.2, .2, .6], [0., .9, .1]]
    interp = Interpretation.from_predictions([0, 1, 1, 2, 0], probabilities,
                                             class_names=['a', 'b', 'c'], top=2)
    assert interp.confusion.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert interp.errors.tolist() == [1, 1, 0]
    np.testing.assert_allclose(interp.fair_share_ratio, [0.5 / 0.4, 0.5 / 0.4, 0.0])
    assert interp.top_losses == [
        TopLoss(4, None, 0, 1, pytest.approx(.9), 0.0, pytest.approx(-np.log(np.finfo(
            np.float32).tiny))), TopLoss(2, None, 1, 0, .5, pytest.approx(.4),
                                         pytest.approx(-np.log(.4)))]
    assert interp.worst_classes('error_rate') == [0, 1, 2]
    assert interp.most_confused_with(1) == [(0, 1)]


def test_a_perfect_set_has_no_error_shares_and_a_short_report():
    interp = Interpretation.from_predictions([0, 1], [[.9, .1], [.2, .8]])
    assert interp.error_share.tolist() == [0.0, 0.0] and interp.confused_pairs == []
    assert 'worst classes' not in repr(interp) and 'class 0:' not in interp.report()


def test_class_statistics_leaves_undefined_ratios_as_nan():
    stats = class_statistics([[2, 0, 0], [1, 0, 0], [0, 0, 0]])
    assert np.isnan(stats['precision'][1]) and np.isnan(stats['recall'][2])
    assert np.isnan(stats['fair_share_ratio'][2]) and stats['error_share'][1] == 1.0
    assert confused_pairs([[2, 0, 0], [1, 0, 0], [0, 0, 0]]) == [ConfusedPair(1, 0, 1)]


def test_input_row_reads_arrays_lists_and_dicts():
    assert input_row(np.arange(12).reshape(3, 4), 2).tolist() == [8, 9, 10, 11]
    assert input_row({'pixels': [np.zeros(2), np.ones(3)]}, 1, 'images').shape == (3,)


def test_bad_arguments_say_what_was_expected_and_received(digits_net):
    with pytest.raises(ConfigError, match=r'expected 10 class names .*received 3'):
        interpret(digits_net, 'valid', class_names=['a', 'b', 'c'])
    with pytest.raises(ConfigError, match=r"expected a set name .*received 'validation'"):
        interpret(digits_net, 'validation')
    with pytest.raises(ConfigError, match='top must be a positive integer; received 0'):
        interpret(digits_net, 'valid', top=0)
    with pytest.raises(DataError, match='expected one class per row'):
        interpret(digits_net, (digits_net.preprocessor.get_raw_x()[1], [1, 2]))
    with pytest.raises(DataError, match=r'expected a square confusion matrix .*received'):
        class_statistics([[1, 2, 3]])
    with pytest.raises(DataError, match='expected classes 0 .. 1, received values from 0 to 2'):
        Interpretation.from_predictions([0, 2], [[.5, .5], [.5, .5]])
    with pytest.raises(ConfigError, match="worst_classes: by must be one of .*received 'loss'"):
        Interpretation.from_predictions([0, 1], [[.5, .5], [.5, .5]]).worst_classes('loss')
