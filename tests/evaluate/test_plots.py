"""The pictures: each writes a PNG of a sensible size that is not blank, shows what
it says (titles, tiles, cells), redraws in place, leaves the augmentation schedule
where it was, and names the ``plot`` extra when matplotlib is missing."""

import builtins
import importlib.util
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError, MissingDependencyError
from pydnn2.evaluate import plots
from pydnn2.evaluate.interpret import interpret
from pydnn2.preprocess import Rotator360, StretchResizer, split_training_data

# The pictures need the plot extra; the last test, that its absence is explained, does not.
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec('matplotlib') is None,
                                      reason='needs matplotlib: pip install pydnn2[plot]')


@pytest.fixture(scope='module')
def digits_net(net_maker, digits_cached, tmp_path_factory):
    """The conftest small net, trained 2 main epochs and 1 final epoch."""
    sets = split_training_data(tuple(np.array(a) for a in digits_cached), 32, 60, 20, 20)
    net = net_maker(sets, tmp_path_factory.mktemp('plots'))
    net.train(nn.Adam(0.01), epochs=2, final_epochs=1, verbose=False)
    return net


@pytest.fixture(scope='module')
def image_net(tmp_path_factory):
    """A 2-class net on raw images of many sizes, turned and flipped by Rotator360."""
    rng = np.random.RandomState(0)
    images = []
    for n in range(40):
        h, w = rng.randint(12, 40, size=2)
        image = np.full((h, w), 255, np.uint8)
        image[h // 4:, : w // 3 if n % 2 else w // 2] = rng.randint(0, 120)
        images.append(image)
    sets = split_training_data((images, np.arange(40) % 2), 8, 60, 20, 20)
    pre = Rotator360(sets, (16, 16), StretchResizer(), rng, rotation_range=(0, 360))
    net = nn.NN(pre, 'images', 2, 8, np.random.RandomState(0), verbose=False, device='cpu',
                output_dir=str(tmp_path_factory.mktemp('image_net')))
    net.add_convolution(2, (3, 3), (2, 2))
    net.add_logistic()
    net.train(nn.Adam(0.01), epochs=1, verbose=False)
    return net


def check_png(path, min_width, min_height):
    """The file is a PNG at least this large, with real content: not one flat colour."""
    with Image.open(path) as image:
        assert image.format == 'PNG'
        assert image.width >= min_width and image.height >= min_height
        pixels = np.asarray(image.convert('RGB'))
    assert pixels.std() > 10
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    return pixels


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.slow
@needs_matplotlib
def test_learning_curves_show_three_panels_the_final_phase_and_redraw_in_place(digits_net,
                                                                               tmp_path):
    fig = plots.plot_history(digits_net.history, path=tmp_path / 'curves' / 'history.png')
    check_png(tmp_path / 'curves' / 'history.png', 1000, 300)
    loss, error, rate = fig.axes
    assert [line.get_label() for line in error.lines] == ['train', 'valid',
                                                          'test (at each new best valid)']
    np.testing.assert_allclose(error.lines[0].get_ydata(),
                               100 * np.array(digits_net.history['train_error']))
    assert loss.lines[1].get_xdata().tolist() == [1, 2]     # no validation in the final phase
    shaded = [p for p in loss.patches if p.get_label() == 'final epochs']
    assert len(shaded) == 1 and shaded[0].get_x() == pytest.approx(2.5)
    assert any(line.get_label().startswith('best valid') for line in loss.lines)

    longer = dict(digits_net.history, epoch=[1, 2, 3], learning_rate=[.1, .01, .001])
    again = plots.plot_history(longer, fig=fig)
    assert again is fig and len(fig.axes) == 3 and fig.axes[2].get_yscale() == 'log'
    axes = list(fig.axes)
    assert plots.plot_history(digits_net, axes=axes) is fig and fig.axes == axes


@needs_matplotlib
def test_learning_curves_of_a_history_without_epochs(tmp_path):
    empty = {key: [] for key in ('epoch', 'phase', 'train_loss', 'learning_rate')}
    fig = plots.plot_history(empty, path=tmp_path / 'empty.png')
    assert all('no epochs yet' in [t.get_text() for t in ax.texts] for ax in fig.axes)


@needs_matplotlib
def test_a_picture_is_written_whole_in_the_format_its_name_asks_for(tmp_path):
    history = {'epoch': [1, 2], 'phase': ['main'] * 2, 'train_loss': [1.0, 0.5],
               'learning_rate': [0.1, 0.1]}
    plots.plot_history(history, path=tmp_path / 'curves.png')
    plots.plot_history(history, path=tmp_path / 'curves.pdf')
    plots.plot_history(history, path=tmp_path / 'curves.png')           # replaced in place
    assert sorted(os.listdir(tmp_path)) == ['curves.pdf', 'curves.png']   # no temporary left
    assert Image.open(tmp_path / 'curves.png').format == 'PNG'
    assert (tmp_path / 'curves.pdf').read_bytes().startswith(b'%PDF')
    with pytest.raises(ValueError, match='xyz'):
        plots.plot_history(history, path=tmp_path / 'curves.xyz')
    assert sorted(os.listdir(tmp_path)) == ['curves.pdf', 'curves.png']


@pytest.mark.slow
@needs_matplotlib
def test_confusion_matrix_counts_and_rows_with_numbers_in_small_matrices(digits_net, tmp_path):
    interp = interpret(digits_net, 'test', class_names=[f'd{i}' for i in range(10)])
    fig = plots.plot_confusion(interp, path=tmp_path / 'confusion.png')
    check_png(tmp_path / 'confusion.png', 900, 450)
    counts, rows = [ax for ax in fig.axes if ax.get_title() in ('counts', 'row-normalised (%)')]
    assert counts.get_title() == 'counts' and rows.get_title() == 'row-normalised (%)'
    assert [t.get_text() for t in counts.get_xticklabels()] == [f'd{i}' for i in range(10)]
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
               for t in counts.texts}
    nonzero = {(a, p): str(v) for (a, p), v in np.ndenumerate(interp.confusion) if v}
    assert written == nonzero
    shares = interp.confusion[0] / interp.confusion[0].sum()
    assert f'{100 * shares[0]:.0f}' in [t.get_text() for t in rows.texts]


@pytest.mark.parametrize('matrix, words', [
    ([[1, np.nan], [0, 2]], 'received nan at actual class 0, predicted 1 (1 such cell)'),
    ([[1, 2], [np.inf, 2]], 'received inf at actual class 1, predicted 0'),
    ([['a', 'b'], ['c', 'd']], "counts (numbers), received an array of <U1 ('a', ...)"),
    ([[3, -1], [-2, 2]], ('not negative) in the confusion matrix, received -1 at actual class '
                          '0, predicted 1 (2 such cells)')),
])
def test_a_confusion_matrix_that_is_not_counts_is_a_data_error(matrix, words):
    with pytest.raises(DataError, match='plot_confusion: expected .*' + re.escape(words)):
        plots.plot_confusion(np.array(matrix))


@pytest.mark.slow
@needs_matplotlib
def test_confusion_matrix_stays_readable_at_121_classes(tmp_path):
    rng = np.random.RandomState(0)
    matrix = rng.poisson(0.2, (121, 121))
    matrix[np.arange(121), np.arange(121)] += rng.randint(5, 300, 121)
    names = [f'plankton_class_{i:03d}' for i in range(121)]
    fig = plots.plot_confusion(matrix, names, normalize=True, path=tmp_path / 'c121.png')
    check_png(tmp_path / 'c121.png', 1500, 1500)
    ax = image_axes(fig)[0]
    labels = ax.get_yticklabels()
    assert len(labels) == 121 and not ax.texts                # every name, no cell numbers
    assert 4 <= labels[0].get_fontsize() <= 10


@needs_matplotlib
def test_tick_labels_thin_out_when_they_cannot_all_fit():
    fig = plots.plot_confusion(np.eye(400, dtype=int), normalize=False)
    ticks = image_axes(fig)[0].get_xticks()
    assert 100 <= len(ticks) < 400 and ticks[0] == 0


@needs_matplotlib
def test_worst_mistakes_show_each_image_with_classes_probabilities_and_file(digits_net,
                                                                           tmp_path):
    interp = interpret(digits_net, 'valid')
    names = [f'file_{i}.png' for i in range(2000)]
    fig = plots.plot_mistakes(interp, count=6, file_names=names, path=tmp_path / 'm.png')
    check_png(tmp_path / 'm.png', 400, 300)
    tiles = image_axes(fig)
    assert len(tiles) == min(6, interp.num_errors) >= 1
    worst = interp.wrong[0]
    a, p = interp.actual[worst], interp.predicted[worst]
    assert tiles[0].get_title() == (
        f'{a} taken for {p}\np={interp.probabilities[worst, p]:.2f}, actual '
        f'{interp.probabilities[worst, a]:.2f}\nfile_{interp.files[worst]}.png')
    raw = interp.image(worst)[0]                              # (1, 8, 8) -> (8, 8), 0..16
    np.testing.assert_allclose(tiles[0].images[0].get_array(),
                               (raw - raw.min()) / (raw.max() - raw.min()))
    from_net = plots.plot_mistakes(digits_net, 'valid', count=2)
    assert [ax.get_title() for ax in image_axes(from_net)] == [
        t.get_title().replace(f'file_{interp.files[r]}.png', f'file {interp.files[r]}')
        for t, r in zip(tiles[:2], interp.wrong)]


@needs_matplotlib
def test_image_tiles_of_any_sizes_and_kinds(tmp_path):
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (20, 30), dtype=np.uint8), rng.rand(3, 12, 12),
              rng.rand(9, 7, 3).astype(np.float32), torch.randn(1, 5, 8),
              np.arange(16.0)]
    fig = plots.plot_images(images, titles=list('abcde'), cols=3, path=tmp_path / 'tiles.png')
    check_png(tmp_path / 'tiles.png', 300, 200)
    tiles = image_axes(fig)
    assert [ax.get_title() for ax in tiles] == ['a\n20x30', 'b\n12x12', 'c\n9x7', 'd\n5x8',
                                                'e\n4x4']
    np.testing.assert_allclose(tiles[0].images[0].get_array(), images[0] / 255)
    shown = tiles[2].images[0].get_array()
    assert shown.shape == (9, 7, 3) and shown.min() == 0 and shown.max() == 1
    with pytest.raises(ConfigError, match='expected one title per image .5., received 2'):
        plots.plot_images(images, titles=['a', 'b'])
    with pytest.raises(DataError, match=r'image 0: expected an image .*received shape '
                                        r'\(2, 2, 2, 2\)'):
        plots.plot_images([np.zeros((2, 2, 2, 2))])


def schedule(pre):
    state = pre.random_state()
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else str(a[k]) == str(b[k])
        for k in a)


@pytest.mark.slow
@needs_matplotlib
def test_augmentation_shows_the_next_epoch_without_moving_the_schedule(image_net, tmp_path):
    pre = image_net.preprocessor
    before = schedule(pre)
    fig = plots.plot_augmentation(image_net, count=5, path=tmp_path / 'aug.png')
    check_png(tmp_path / 'aug.png', 500, 250)
    assert same_state(schedule(pre), before)
    tiles = image_axes(fig)
    assert len(tiles) == 10 and tiles[5].get_title() == 'served\n16x16'
    assert tiles[0].get_title().endswith('as read\n' + 'x'.join(
        map(str, pre.get_raw_x()[0]['images'][0].shape)))
    again = plots.plot_augmentation(image_net, count=5)
    for one, two in zip(tiles, image_axes(again)):
        np.testing.assert_array_equal(one.images[0].get_array(), two.images[0].get_array())
    _, served, _ = plots.augmented_samples(image_net, count=5)
    x, _ = pre.get_train()                            # the epoch training would see next
    np.testing.assert_allclose(served, x['images'][:5].numpy())
    pre.set_random_state(before)


@needs_matplotlib
def test_bad_arguments_say_what_was_expected_and_received():
    with pytest.raises(ConfigError, match="normalize must be one of False, True, 'both'; "
                                          "received 'rows'"):
        plots.plot_confusion(np.eye(3, dtype=int), normalize='rows')
    with pytest.raises(ConfigError, match='expected 3 class names, received 2'):
        plots.plot_confusion(np.eye(3, dtype=int), ['a', 'b'])
    with pytest.raises(ConfigError, match='expected a history .*received list'):
        plots.plot_history([0.5, 0.4])
    with pytest.raises(ConfigError, match='count must be a positive integer; received 0'):
        plots.plot_mistakes(None, count=0)


def test_a_missing_matplotlib_names_the_plot_extra(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split('.')[0] == 'matplotlib':
            raise ImportError(f'No module named {name!r}')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_matplotlib)
    with pytest.raises(MissingDependencyError, match=r'pip install pydnn2\[plot\]'):
        plots.plot_images([np.zeros((4, 4))])


@pytest.mark.slow
@needs_matplotlib
def test_the_pictures_example_writes_one_picture_of_each_kind(tmp_path, capsys):
    path = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'examples',
                        'make_pictures.py')
    spec = importlib.util.spec_from_file_location('make_pictures', path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    written = example.main(str(tmp_path), num_images=400, epochs=1)
    assert written == ['augmentation.png', 'confusion_matrix.png', 'image_tiles.png',
                       'learning_curves.png', 'worst_mistakes.png']
    for name in written:
        check_png(tmp_path / name, 350, 200)
    assert 'fair share of error' in capsys.readouterr().out
