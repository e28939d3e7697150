"""Image preprocessors: batched transforms, the rotation schedule, statistics from
the training set alone, channels, and saved state."""

import importlib.util
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from pydnn2.preprocess import Canonicalizer, ImagePreprocessor, Rotator360, Rotator360PlusGeometry
from pydnn2.preprocess.imageops import (GEOMETRY_FEATURES, _grid, affine_matrices,
                                        canonicalize, geometry_features, transform_images)
from pydnn2.errors import ConfigError, DataError
from pydnn2.preprocess import (PreserveAspectRatioResizer, StochasticStretchResizer,
                               StretchResizer, preprocessor_class, split_training_data)


def raw_images(n, rng, low=8, high=30, channels=None):
    """``n`` dark rectangles on white, of random image sizes."""
    images = []
    for _ in range(n):
        h, w = rng.randint(low, high, size=2)
        image = np.full((h, w), 255, np.uint8)
        image[h // 4: h - h // 4, w // 3: w - w // 3] = rng.randint(0, 100)
        images.append(image if channels is None else np.stack([image] * channels))
    return images


def image_sets(n=60, seed=0, **kwargs):
    rng = np.random.RandomState(seed)
    images = raw_images(n, rng, **kwargs)
    return split_training_data((images, np.arange(n) % 3), 8, 60, 20, 20)


def through_torch_save(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_quarter_turns_and_flips_match_numpy_exactly():
    image = np.random.RandomState(0).randint(0, 256, (1, 1, 12, 12)).astype(np.uint8)
    tensor = torch.from_numpy(image)
    for angle, k in ((90, 1), (180, 2), (270, 3)):
        out = transform_images(tensor, affine_matrices([angle], (12, 12)))
        np.testing.assert_allclose(out[0, 0].numpy(), np.rot90(image[0, 0], k), atol=1e-3)
    flips = np.array([True])
    out = transform_images(tensor, affine_matrices([0], (12, 12), flip_lr=flips))
    np.testing.assert_allclose(out[0, 0].numpy(), image[0, 0, :, ::-1], atol=1e-3)
    out = transform_images(tensor, affine_matrices([0], (12, 12), flip_ud=flips))
    np.testing.assert_allclose(out[0, 0].numpy(), image[0, 0, ::-1], atol=1e-3)


def test_rotation_matches_pillow_on_a_non_square_image():
    y, x = np.mgrid[:20, :40]
    smooth = (127 + 100 * np.sin(x / 5) * np.cos(y / 4)).astype(np.uint8)
    ours = transform_images(torch.from_numpy(smooth[None, None]),
                            affine_matrices([30], (20, 40)), fill=255)[0, 0].numpy()
    pillow = np.asarray(Image.fromarray(smooth).rotate(30, Image.Resampling.BILINEAR,
                                                       fillcolor=255))
    black = transform_images(torch.zeros(1, 1, 20, 40, dtype=torch.uint8),
                             affine_matrices([30], (20, 40)))[0, 0].numpy()
    inside = black == 0  # pixels that sample the image alone, not the fill
    assert inside.sum() > 300
    assert np.abs(ours - pillow)[inside].max() <= 1.0
    assert ours[0, 0] == pytest.approx(255)  # the uncovered corner takes the fill


def test_sampling_grid_matches_torch_affine_grid():
    rng = np.random.RandomState(0)
    theta = affine_matrices(rng.uniform(0, 360, 5), (7, 11), rng.rand(5) < .5, rng.rand(5) < .5,
                            rng.uniform(0.5, 1.5, (5, 2)))
    ours = _grid(theta, (7, 11))
    reference = torch.nn.functional.affine_grid(theta, (5, 1, 7, 11), align_corners=False)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_transform_normalises_with_mean_and_std():
    images = torch.full((3, 1, 4, 4), 100, dtype=torch.uint8)
    mean = torch.full((1, 4, 4), 60.0)
    out = transform_images(images, affine_matrices(np.zeros(3), (4, 4)), mean=mean, std=8.0)
    np.testing.assert_allclose(out.numpy(), 5.0, atol=1e-4)


def test_every_image_sees_every_angle_over_the_epochs():
    pre = Rotator360(image_sets(), (12, 12), StretchResizer(), np.random.RandomState(1))
    n = len(pre.get_raw_y()[0])
    seen = np.stack([pre.angles(epoch, 0, n) for epoch in range(360)])  # (epochs, N)
    for column in seen.T:
        assert sorted(column) == list(range(360))
    later = np.stack([pre.angles(epoch, 0, n) for epoch in range(360, 720)])
    assert np.all(np.mod(later, 1) == 0.5)  # the second round falls between the grid angles
    assert len(set(seen[0])) > 1  # images have their own angles


def test_a_small_rotation_range_covers_its_grid():
    pre = Rotator360(image_sets(), (12, 12), StretchResizer(), 0, rotation_range=(-15, 15),
                     rotation_step=5)
    seen = np.stack([pre.angles(epoch, 0, 36) for epoch in range(6)])
    for column in seen.T:
        assert sorted(column) == [-15, -10, -5, 0, 5, 10]


def test_get_train_serves_the_scheduled_rotations_and_moves_on():
    rng = np.random.RandomState(3)
    images = [rng.randint(0, 256, (8, 8)).astype(np.uint8) for _ in range(40)]
    sets = split_training_data((images, np.zeros(40, int)), 8, 50, 25, 25)
    pre = Rotator360(sets, (8, 8), StretchResizer(), 0, rotation_step=90, flip_lr=False)
    stats = pre.state_dict()['stats']
    mean, std = stats['image_mean'].numpy(), stats['image_std']
    raw = pre.get_raw_x()[0]['images']
    for epoch in range(4):
        angles = pre.angles(epoch, 0, len(raw))
        x, _ = pre.get_train()
        grey = x['images'][:, 0].numpy() * std + mean[0]  # back to grey levels
        for image, out, angle in zip(raw, grey, angles):
            np.testing.assert_allclose(out, np.rot90(image, int(angle) // 90), atol=1e-2)
    assert pre.random_state()['epoch'] == 4


def test_flips_are_random_per_image_and_epoch():
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (6, 6)).astype(np.uint8) for _ in range(40)]
    sets = split_training_data((images, np.zeros(40, int)), 8, 50, 25, 25)
    pre = Rotator360(sets, (6, 6), StretchResizer(), 0, rotation_range=(0, 0))
    valid_like = [pre.get_train()[0]['images'] for _ in range(3)]
    plain = pre.preprocess(pre.get_raw_x()[0])['images']
    flipped = [(torch.isclose(v, plain, atol=1e-4).flatten(1).all(1) == 0) for v in valid_like]
    assert 0 < int(flipped[0].sum()) < 20 and not torch.equal(flipped[0], flipped[1])
    for v, f in zip(valid_like, flipped):
        np.testing.assert_allclose(v[f].numpy(), plain[f].flip(-1).numpy(), atol=1e-4)


def test_channels_and_shapes():
    pre = Rotator360PlusGeometry(image_sets(), (10, 14), PreserveAspectRatioResizer(), 0)
    assert pre.channels == ('images', 'shapes', 'geometry')
    assert pre.shape_for('images') == (1, 10, 14) and pre.shape_for('geometry') == (7,)
    for x, y in (pre.get_train(), pre.get_valid(), pre.get_test(), pre.get_all_train()):
        assert {k: tuple(v.shape[1:]) for k, v in x.items()} == {
            'images': (1, 10, 14), 'shapes': (2,), 'geometry': (len(GEOMETRY_FEATURES),)}
        assert all(v.dtype == torch.float32 for v in x.values()) and y.dtype == torch.int64
        assert len(y) == len(x['images'])
    assert len(pre.get_all_train()[1]) == sum(len(y) for y in pre.get_raw_y())


def test_shapes_channel_is_the_standardised_original_size():
    sets = image_sets()
    pre = Canonicalizer(sets, (8, 8), StretchResizer())
    x, _ = pre.get_train()
    sizes = np.array([im.shape for im in sets[0][0]], float)
    expected = (sizes - sizes.mean(0)) / sizes.std(0)
    np.testing.assert_allclose(x['shapes'].numpy(), expected, rtol=1e-5, atol=1e-5)
    x, _ = pre.get_valid()
    sizes_valid = np.array([im.shape for im in sets[1][0]], float)
    np.testing.assert_allclose(x['shapes'].numpy(), (sizes_valid - sizes.mean(0)) / sizes.std(0),
                               rtol=1e-5, atol=1e-5)


def test_images_are_centred_on_the_mean_training_image_and_divided_by_255():
    sets = image_sets()
    pre = Canonicalizer(sets, (8, 8), StretchResizer(), orient=False, flip_lr=False,
                        flip_ud=False)
    images = pre.get_train()[0]['images']
    resized = np.stack([StretchResizer().training(im, (8, 8)) for im in sets[0][0]])
    mean = resized.astype(np.float64).mean(0)
    np.testing.assert_allclose(images[:, 0].numpy(), (resized - mean) / 255, atol=1e-5)
    assert pre.state_dict()['stats']['image_std'] == 255.0       # pydnn's scale
    assert pre.get_train()[0]['images'] is images  # nothing to augment: served from the cache


@pytest.mark.parametrize('cls', [Canonicalizer, Rotator360, Rotator360PlusGeometry])
def test_statistics_come_from_the_training_set_alone(cls):
    sets = image_sets(seed=0)
    other = image_sets(seed=9)
    swapped = (sets[0], other[1], (other[1][0][:3], other[1][1][:3]))
    a = cls(sets, (8, 8), StretchResizer(), 5).state_dict()['stats']
    b = cls(swapped, (8, 8), StretchResizer(), 5).state_dict()['stats']
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
    black = [np.zeros((20, 20), np.uint8)] * 12
    pre = cls((sets[0], (black, np.zeros(12, int)), sets[2]), (8, 8), StretchResizer(), 5)
    assert pre.get_valid()[0]['images'].mean() < -0.5   # far from the training mean: not refit


@pytest.mark.parametrize('cls', [Canonicalizer, Rotator360, Rotator360PlusGeometry])
def test_state_dict_round_trip_preprocesses_identically(cls):
    sets = image_sets()
    resizer = StochasticStretchResizer(np.random.RandomState(0), (0.9, 1.1))
    pre = cls(sets, (9, 9), resizer, 0)
    state = through_torch_save(pre.state_dict())
    rebuilt = preprocessor_class(cls.__name__).from_state(state)
    assert type(rebuilt) is cls and not rebuilt.has_data()
    unseen = raw_images(7, np.random.RandomState(5))
    ours, theirs = pre.preprocess({'images': unseen}), rebuilt.preprocess(unseen)
    assert ours.keys() == theirs.keys() == set(pre.channels)
    for channel in ours:
        assert torch.equal(ours[channel], theirs[channel])
    with pytest.raises(DataError, match='needs data'):
        rebuilt.get_train()


def test_schedule_state_resumes_the_exact_next_epoch():
    sets = image_sets()
    pre = Rotator360(sets, (9, 9), StretchResizer(), 0, flip_ud=True, stretch=(0.8, 1.2))
    for _ in range(3):
        pre.get_train()
    state = through_torch_save(pre.random_state())
    expected = pre.get_train()[0]['images']
    resumed = Rotator360(sets, (9, 9), StretchResizer(), 99, flip_ud=True, stretch=(0.8, 1.2))
    resumed.set_random_state(state)
    assert torch.equal(resumed.get_train()[0]['images'], expected)
    loaded = Rotator360.from_state(through_torch_save(pre.state_dict()))
    loaded.set_data(sets)
    assert torch.equal(loaded.get_train()[0]['images'], pre.get_train()[0]['images'])


def test_stochastic_stretch_resizer_is_redrawn_every_epoch_on_the_device():
    pre = Rotator360(image_sets(), (9, 9), StochasticStretchResizer(np.random.RandomState(0),
                                                                    (0.5, 0.7)),
                     0, rotation_range=(0, 0), flip_lr=False)
    a, b = pre.get_train()[0]['images'], pre.get_train()[0]['images']
    assert not torch.equal(a, b)
    stats = pre.state_dict()['stats']
    white = (255 - stats['image_mean'][0, 0, 0]) / stats['image_std']
    assert torch.allclose(a[:, 0, 0, 0], white)  # shrunk: the corners are filled


def test_colour_images_keep_their_channels():
    pre = Rotator360(image_sets(channels=3), (8, 8), StretchResizer(), 0)
    assert pre.shape_for('images') == (3, 8, 8)
    assert pre.get_train()[0]['images'].shape[1:] == (3, 8, 8)
    with pytest.raises(DataError, match=r'1 channel\(s\).*expected 3'):
        pre.preprocess([np.zeros((5, 5), np.uint8)])


def test_geometry_boxes_the_canonical_object_whatever_its_turn():
    image = np.full((20, 30), 255, np.uint8)
    image[4:9, 3:24] = 20                                  # a bar 5 x 21
    features = geometry_features(image)
    turned = geometry_features(np.ascontiguousarray(np.rot90(image)))
    assert features[:2].tolist() == [20, 30] and turned[:2].tolist() == [30, 20]
    for f in (features, turned):                           # laid flat: short and wide
        assert f[2] <= 7 and 19 <= f[3] <= 23
    assert GEOMETRY_FEATURES == ('height', 'width', 'box_height', 'box_width', 'angle',
                                 'flip_ud', 'flip_lr')


def test_orient_lays_a_tilted_bar_horizontal():
    bar = np.full((40, 40), 255, np.uint8)
    for i in range(30):
        bar[5 + i, 5 + i // 2: 8 + i // 2] = 0
    turned, angle, _, _ = canonicalize(bar)
    assert turned.shape == (40, 40) and 0 <= angle < 180
    sets = split_training_data(([bar] * 16, np.zeros(16, int)), 4, 50, 25, 25)
    pre = Canonicalizer(sets, (20, 20), PreserveAspectRatioResizer(), 0)
    stats = pre.state_dict()['stats']
    out = pre.preprocess([bar])['images'][0, 0].numpy()
    dark = out * stats['image_std'] + stats['image_mean'][0].numpy() < 128
    rows, cols = np.flatnonzero(dark.any(1)), np.flatnonzero(dark.any(0))
    assert cols[-1] - cols[0] > 2 * (rows[-1] - rows[0])


def test_bad_data_and_arguments_are_named():
    sets = image_sets()
    with pytest.raises(DataError, match='three sets returned by split_training_data'):
        Rotator360(sets[:2], (8, 8), StretchResizer(), 0)
    bad = ((sets[0][0][:-1] + [np.zeros(7)], sets[0][1]), sets[1], sets[2])
    last = len(sets[0][0]) - 1
    with pytest.raises(DataError, match=rf'image {last} of the train set.*received shape \(7,\)'):
        Rotator360(bad, (8, 8), StretchResizer(), 0)
    with pytest.raises(ConfigError, match='rotation_range.*received'):
        Rotator360(sets, (8, 8), StretchResizer(), 0, rotation_range=(10, 0))
    with pytest.raises(ConfigError, match='Resizer.*received str'):
        Rotator360(sets, (8, 8), 'stretch', 0)
    with pytest.raises(ConfigError, match='rng must be'):
        Rotator360(sets, (8, 8), StretchResizer(), 'seed')
    pre = Rotator360(sets, (8, 8), StretchResizer(), 0)
    with pytest.raises(DataError, match="expected an 'images' channel"):
        pre.preprocess({'pictures': []})
    with pytest.raises(DataError, match='unknown channel'):
        pre.shape_for('geometry')


def test_all_image_preprocessors_are_registered():
    for cls in (ImagePreprocessor, Canonicalizer, Rotator360, Rotator360PlusGeometry):
        assert preprocessor_class(cls.__name__) is cls


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_augmentation_runs_on_the_device_it_is_moved_to():
    pre = Rotator360(image_sets(), (16, 16), StretchResizer(), 0).to('cuda')
    x, y = pre.get_train()
    assert all(v.device.type == 'cuda' for v in x.values()) and y.device.type == 'cuda'
    cpu = Rotator360(image_sets(), (16, 16), StretchResizer(), 0)
    np.testing.assert_allclose(x['images'].cpu().numpy(), cpu.get_train()[0]['images'].numpy(),
                               atol=1e-3)


def size_coded_sets(n=240, seed=0):
    """Discs that look alike once resized; only the original size tells the class."""
    rng = np.random.RandomState(seed)
    images, classes = [], np.arange(n) % 2
    for cls in classes:
        side = rng.randint(10, 16) if cls == 0 else rng.randint(20, 26)
        yy, xx = np.mgrid[:side, :side] - side / 2
        radius = side * rng.uniform(0.25, 0.4)
        disc = np.where(yy ** 2 + xx ** 2 < radius ** 2, 40, 240)
        disc = disc + rng.randint(-15, 15, (side, side))
        images.append(disc.astype(np.uint8))
    return split_training_data((images, classes), 16, 60, 20, 20)


@pytest.mark.slow
def test_merging_the_shapes_channel_beats_the_same_net_without_it(tmp_path):
    nn = pytest.importorskip('pydnn2.neuralnet')
    sets = size_coded_sets()
    errors = {}
    for merge in (True, False):
        pre = Rotator360(sets, (8, 8), StretchResizer(), np.random.RandomState(1))
        net = nn.NN(pre, 'images', 2, 16, np.random.RandomState(0), verbose=False,
                    output_dir=str(tmp_path / f'merge_{merge}'), device='cpu')
        net.add_convolution(4, (3, 3), (2, 2))
        if merge:
            net.merge_data_channel('shapes')
        net.add_hidden(8)
        net.add_logistic()
        history = net.train(nn.Adam(learning_rate=0.01), epochs=4)
        errors[merge] = min(history['valid_error'])
    assert errors[True] <= 0.05 and errors[False] >= 0.25, errors


def test_a_saved_net_rebuilds_the_preprocessor_and_predicts_the_same(tmp_path):
    nn = pytest.importorskip('pydnn2.neuralnet')
    sets = size_coded_sets(64)
    pre = Rotator360PlusGeometry(sets, (8, 8), StretchResizer(), 0)
    net = nn.NN(pre, 'images', 2, 16, np.random.RandomState(0), verbose=False,
                output_dir=str(tmp_path), device='cpu')
    net.merge_data_channel('geometry')
    net.add_logistic()
    unseen = raw_images(9, np.random.RandomState(2))
    loaded = nn.load(nn.save(net, str(tmp_path / 'net.pt')))
    assert type(loaded.preprocessor) is Rotator360PlusGeometry
    np.testing.assert_array_equal(loaded.predict({'images': unseen})[1],
                                  net.predict({'images': unseen})[1])


@pytest.mark.slow
def test_the_image_folder_example_runs_end_to_end(tmp_path, capsys):
    pytest.importorskip('pydnn2.neuralnet')
    path = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'examples', 'images.py')
    spec = importlib.util.spec_from_file_location('images_example', path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    accuracy = example.main(str(tmp_path), epochs=2, num_images=700)
    out = capsys.readouterr().out
    assert 'taken for' in out or 'right of' in out
    assert 'unseen images' in out and accuracy > 0.5
