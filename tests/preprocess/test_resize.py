"""Resizers: output size, fill, the crop boxes, randomness, and saved state."""

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pydnn2.errors import ConfigError, DataError
from pydnn2.preprocess import (ContiguousBoxPreserveAspectRatioResizer,
                               ContiguousBoxStretchResizer, PreserveAspectRatioResizer,
                               StochasticStretchResizer, StretchResizer,
                               ThresholdBoxPreserveAspectRatioResizer, ThresholdBoxStretchResizer,
                               as_image, label_components, largest_blob_box, resizer_from_state)

ALL_RESIZERS = [
    StretchResizer(), PreserveAspectRatioResizer(), ThresholdBoxStretchResizer(128),
    ThresholdBoxPreserveAspectRatioResizer(128), ContiguousBoxStretchResizer(128),
    ContiguousBoxPreserveAspectRatioResizer(128),
    StochasticStretchResizer(np.random.RandomState(0), (0.8, 1.2))]


def blob_image(shape=(30, 60), box=(10, 20, 5, 25)):
    """White image with one black rectangle at ``box`` (top, bottom, left, right)."""
    image = np.full(shape, 255, np.uint8)
    top, bottom, left, right = box
    image[top:bottom, left:right] = 0
    return image


@pytest.mark.parametrize('resizer', ALL_RESIZERS, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize('shape', [(30, 60), (61, 7), (3, 30, 60)])
def test_every_resizer_returns_the_target_size(resizer, shape):
    image = np.full(shape, 255, np.uint8)
    image[..., 2:5, 3:6] = 0
    for method in (resizer.training, resizer.prediction):
        out = method(image, (16, 12))
        assert out.shape == shape[:-2] + (16, 12)
        assert out.dtype == np.uint8


@pytest.mark.parametrize('fill', [255, 0, 100])
def test_preserve_aspect_ratio_pads_with_fill_and_keeps_the_ratio(fill):
    out = PreserveAspectRatioResizer(fill=fill).prediction(np.full((10, 40), 77, np.uint8),
                                                           (20, 20))
    rows = np.flatnonzero((out == 77).all(axis=1))
    assert len(rows) == 5  # 10x40 scaled by 1/2 -> 5x20, centred in 20x20
    assert (out[:rows[0]] == fill).all() and (out[rows[-1] + 1:] == fill).all()


def test_threshold_box_crops_to_the_dark_pixels():
    out = ThresholdBoxStretchResizer(128).prediction(blob_image(), (8, 8))
    assert (out == 0).all()  # only the black rectangle is left, stretched


def test_threshold_box_preserve_ratio_centres_the_object_on_fill():
    out = ThresholdBoxPreserveAspectRatioResizer(128, fill=200).prediction(blob_image(), (16, 16))
    assert out[8, 8] == 0 and out[0, 0] == 200 and out[-1, -1] == 200
    assert (out == 0).sum() == 16 * 8  # the 10x20 box keeps its 1:2 ratio


def test_box_resizers_keep_an_image_without_dark_pixels_whole():
    white = np.full((10, 20), 255, np.uint8)
    for resizer in (ThresholdBoxStretchResizer(128), ContiguousBoxStretchResizer(128)):
        assert (resizer.prediction(white, (5, 5)) == 255).all()


def test_contiguous_box_ignores_specks_that_the_threshold_box_keeps():
    image = blob_image((40, 40), (20, 30, 20, 30))
    image[1, 1] = 0  # a speck of dirt far from the object
    assert (ContiguousBoxStretchResizer(128).prediction(image, (8, 8)) == 0).all()
    assert (ThresholdBoxStretchResizer(128).prediction(image, (8, 8)) == 255).any()


def test_contiguous_box_threshold_decides_what_is_dark():
    image = blob_image((40, 40), (20, 30, 20, 30))
    image[2:12, 2:20] = 150  # a large grey region: 255 - 150 = 105 above white
    assert (ContiguousBoxStretchResizer(128).prediction(image, (8, 8)) == 0).all()
    assert (ContiguousBoxStretchResizer(50).prediction(image, (8, 8)) == 150).all()


def test_the_largest_blob_is_the_one_with_the_largest_box_as_in_pydnn():
    mask = np.zeros((20, 20), bool)
    mask[1:12, 1] = mask[1:12, 11] = mask[1, 1:12] = mask[11, 1:12] = True  # a ring: 40 pixels
    mask[14:20, 14:20] = True                                            # a block: 36
    assert largest_blob_box(mask) == (1, 12, 1, 12)      # the ring's box (121) beats 36


@pytest.mark.parametrize('seed', range(8))
def test_largest_blob_box_matches_scipys_labels_and_pydnns_choice(seed):
    ndimage = pytest.importorskip('scipy.ndimage')
    mask = np.random.RandomState(seed).rand(30, 40) < 0.45
    coded, _ = ndimage.label(mask)                       # pydnn's call: 4-connected
    slices = ndimage.find_objects(coded)
    biggest = slices[int(np.argmax([mask[s].size for s in slices]))]
    expected = (biggest[0].start, biggest[0].stop, biggest[1].start, biggest[1].stop)
    assert largest_blob_box(mask) == expected


def test_stochastic_stretch_is_random_for_training_and_plain_for_prediction():
    resizer = StochasticStretchResizer(np.random.RandomState(1), (0.5, 0.9))
    image = np.zeros((32, 32), np.uint8)
    outs = [resizer.training(image, (20, 20)) for _ in range(5)]
    assert len({o.tobytes() for o in outs}) > 1
    assert all((o[0] == 255).all() for o in outs)  # shrunk at most 0.9: white border
    assert (resizer.prediction(image, (20, 20)) == 0).all()
    assert resizer.stretch_range == (0.5, 0.9)


def blob_partition_bfs(mask, connectivity):
    """Reference: label every pixel with the smallest flat index of its region (BFS)."""
    h, w = mask.shape
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    if connectivity == 8:
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    out = np.full(mask.shape, -1)
    for start in zip(*np.nonzero(mask)):
        if out[start] >= 0:
            continue
        queue, out[start] = deque([start]), start[0] * w + start[1]
        while queue:
            r, c = queue.popleft()
            for dr, dc in steps:
                q = (r + dr, c + dc)
                if 0 <= q[0] < h and 0 <= q[1] < w and mask[q] and out[q] < 0:
                    out[q] = out[start]
                    queue.append(q)
    return out


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))), st.sampled_from([4, 8]))
def test_label_components_matches_a_breadth_first_search(mask, connectivity):
    labels = label_components(mask, connectivity)
    expected = blob_partition_bfs(mask, connectivity)
    first = {}
    for label, ref in zip(labels.ravel(), expected.ravel()):
        assert (label == 0) == (ref < 0)
        if label:
            assert first.setdefault(label, ref) == ref  # same regions, up to naming
    assert len(set(first.values())) == len(first) == labels.max()


def test_largest_blob_box_counts_pixels_with_diagonal_connections():
    mask = np.zeros((10, 10), bool)
    mask[np.arange(6), np.arange(6)] = True  # a diagonal line: one blob only 8-connected
    mask[7:9, 7:10] = True
    assert largest_blob_box(mask, 8) == (0, 6, 0, 6)
    assert largest_blob_box(mask, 4) == (7, 9, 7, 10)
    assert largest_blob_box(np.zeros((3, 3), bool)) is None


@pytest.mark.parametrize('resizer', ALL_RESIZERS, ids=lambda r: type(r).__name__)
def test_state_dict_rebuilds_a_resizer_that_predicts_identically(resizer):
    state = resizer.state_dict()
    rebuilt = resizer_from_state(state)
    image = blob_image()
    assert type(rebuilt) is type(resizer)
    np.testing.assert_array_equal(rebuilt.prediction(image, (9, 13)),
                                  resizer.prediction(image, (9, 13)))
    assert rebuilt.training(image, (9, 13)).shape == (9, 13)


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(ConfigError, match=r'\(height, width\).*received \(0, 5\)'):
        StretchResizer().prediction(blob_image(), (0, 5))
    with pytest.raises(ConfigError, match='threshold.*received -1'):
        ThresholdBoxStretchResizer(-1)
    with pytest.raises(ConfigError, match='fill.*received 300'):
        StretchResizer(fill=300)
    with pytest.raises(ConfigError, match=r'rand_range.*received \(1.2, 0.8\)'):
        StochasticStretchResizer(np.random.RandomState(0), (1.2, 0.8))
    with pytest.raises(ConfigError, match='connectivity'):
        ContiguousBoxStretchResizer(100, connectivity=6)
    with pytest.raises(DataError, match='unknown resizer'):
        resizer_from_state({'class': 'os.system', 'params': {}})


def test_images_are_checked_and_converted_to_uint8():
    assert as_image(np.full((2, 3), 254.6)).tolist() == [[255] * 3] * 2
    with pytest.raises(DataError, match=r'2-D \(H, W\).*received shape \(5,\)'):
        StretchResizer().prediction(np.zeros(5), (2, 2))
    with pytest.raises(DataError, match='0..255.*from -1.0 to 3.0'):
        as_image(np.array([[-1.0, 3.0]]))
    with pytest.raises(DataError, match='0..255'):
        as_image(np.array([[np.nan, 3.0]]))
