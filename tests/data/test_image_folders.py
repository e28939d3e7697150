"""Reading image folders: formats, colour, sampling, hidden files and bad files."""

import functools
import os

import numpy as np
import pytest
from PIL import Image
from sklearn import datasets

from pydnn2.data import DirectoryLabeledImageSet, UnlabeledImageSet, parallel_map, read_image
from pydnn2.errors import ConfigError, DataError


@functools.lru_cache(maxsize=None)
def load_digits():
    return datasets.load_digits()


def digit_image(index, size):
    """Digit ``index`` of scikit-learn's digits, dark on white, at ``size`` (h, w)."""
    grey = 255 - load_digits().images[index] * 255 / 16  # 0..16 ink -> 255..0 grey
    return np.asarray(Image.fromarray(grey.astype(np.uint8)).resize(size[::-1]))


@pytest.fixture
def labelled_dir(tmp_path):
    """Three class folders of PNG, JPEG and RGB PNG digits of varied sizes, plus
    hidden files and folders that must be ignored."""
    digits = load_digits()
    for label in ('0', '1', '2'):
        folder = tmp_path / label
        folder.mkdir()
        indices = np.flatnonzero(digits.target == int(label))[:4]
        for k, index in enumerate(indices):
            image = digit_image(index, (10 + 3 * k, 12 + 2 * k))
            if k == 0:
                Image.fromarray(image).save(folder / f'{k}.png')
            elif k == 1:
                Image.fromarray(image).save(folder / f'{k}.jpg', quality=95)
            else:
                rgb = np.stack([image, image, np.full_like(image, 255)], axis=-1)
                Image.fromarray(rgb).save(folder / f'{k}.png')
        (folder / '.DS_Store').write_bytes(b'not an image')
    (tmp_path / '.cache').mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / '.cache' / 'x.png')
    return tmp_path


def test_build_reads_mixed_formats_as_grey_arrays_of_their_own_sizes(labelled_dir):
    image_set = DirectoryLabeledImageSet(labelled_dir)
    images, classes, files = image_set.build()
    assert image_set.get_labels() == ['0', '1', '2']
    assert classes.dtype == np.int64 and classes.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert files.dtype == np.int64 and files.tolist() == list(range(12))
    assert {im.shape for im in images} == {(10, 12), (13, 14), (16, 16), (19, 18)}
    assert all(im.ndim == 2 and im.dtype == np.uint8 for im in images)
    for image, cls, index in zip(images, classes, files):
        path = image_set.file_name(index)
        assert os.path.basename(os.path.dirname(path)) == image_set.get_labels()[cls]
        assert image.max() > 200 and image.min() < 80  # white background, dark digit


def test_png_images_are_read_exactly_and_jpeg_closely(labelled_dir):
    digits = load_digits()
    index = np.flatnonzero(digits.target == 1)[0]
    expected = digit_image(index, (10, 12)).astype(int)
    assert np.array_equal(read_image(labelled_dir / '1' / '0.png'), expected)
    index = np.flatnonzero(digits.target == 1)[1]
    jpeg = read_image(labelled_dir / '1' / '1.jpg').astype(int)
    assert np.abs(jpeg - digit_image(index, (13, 14))).mean() < 6


def test_color_keeps_rgb_channels_first(labelled_dir):
    images, _, _ = DirectoryLabeledImageSet(labelled_dir, color=True).build()
    assert all(im.ndim == 3 and im.shape[0] == 3 for im in images)
    rgb = images[2]  # written as (grey, grey, 255)
    assert (rgb[2] == 255).all() and np.array_equal(rgb[0], rgb[1])


def test_dtype_types_the_classes_and_images_stay_uint8_as_in_pydnn(labelled_dir):
    images, classes, _ = DirectoryLabeledImageSet(labelled_dir, 'float32').build()
    assert classes.dtype == np.float32 and images[0].dtype == np.uint8
    assert DirectoryLabeledImageSet(labelled_dir).build()[1].dtype == np.int64


def test_get_random_file_draws_a_class_then_a_file(labelled_dir):
    image_set = DirectoryLabeledImageSet(labelled_dir)
    rng = np.random.RandomState(4)
    drawn = {image_set.get_random_file(rng) for _ in range(60)}
    every = {os.path.join(labelled_dir, label, name) for name, label in image_set.get_files()}
    assert drawn <= every and len(drawn) > 6
    again = np.random.RandomState(4)
    assert image_set.get_random_file(again) == image_set.get_random_file(np.random.RandomState(4))


def test_get_files_samples_reproducibly(labelled_dir):
    image_set = DirectoryLabeledImageSet(labelled_dir)
    assert len(image_set.get_files()) == 12
    sample = image_set.get_files(5)
    assert sample == image_set.get_files(5) and len(set(sample)) == 5
    assert sample == __import__('random').Random(12345).sample(image_set.get_files(), 5)  # pydnn
    assert set(sample) <= set(image_set.get_files())
    images, classes, files = image_set.build(5)
    assert len(images) == len(classes) == 5 and len(image_set.files) == 5
    with pytest.raises(ConfigError, match='num_files.*1 to the 12 files.*received 13'):
        image_set.get_files(13)


def test_a_text_file_named_png_is_an_error_naming_the_file(labelled_dir):
    (labelled_dir / '2' / 'broken.png').write_text('this is not a picture')
    with pytest.raises(DataError, match=r"broken\.png.*on_error='skip'"):
        DirectoryLabeledImageSet(labelled_dir).build()


def test_skip_mode_warns_and_leaves_bad_files_out(labelled_dir):
    (labelled_dir / '2' / 'broken.png').write_text('this is not a picture')
    (labelled_dir / '0' / 'truncated.png').write_bytes(
        (labelled_dir / '0' / '0.png').read_bytes()[:60])
    image_set = DirectoryLabeledImageSet(labelled_dir, on_error='skip')
    with pytest.warns(UserWarning, match=r'skipped 2 unreadable.*truncated\.png.*broken\.png'):
        images, classes, files = image_set.build()
    assert len(images) == 12 and len(image_set.skipped) == 2
    assert not any('broken' in image_set.file_name(i) for i in files)


def test_extensions_limit_the_files_read(labelled_dir):
    (labelled_dir / '0' / 'notes.txt').write_text('labelled by hand')
    images, _, _ = DirectoryLabeledImageSet(labelled_dir, extensions=['png', '.JPG']).build()
    assert len(images) == 12


def test_empty_class_folders_are_left_out_with_a_warning(labelled_dir):
    (labelled_dir / 'empty').mkdir()
    (labelled_dir / 'empty' / '.hidden.png').write_bytes(b'')
    image_set = DirectoryLabeledImageSet(labelled_dir)
    with pytest.warns(UserWarning, match=r"hold no image files.*\['empty'\]"):
        assert image_set.get_labels() == ['0', '1', '2']


def test_folders_without_classes_are_errors(tmp_path):
    with pytest.raises(DataError, match='is not a folder'):
        DirectoryLabeledImageSet(tmp_path / 'missing')
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / 'loose.png')
    with pytest.raises(DataError, match='one subfolder of images per class'):
        DirectoryLabeledImageSet(tmp_path).build()
    with pytest.raises(ConfigError, match="on_error.*received 'ignore'"):
        DirectoryLabeledImageSet(tmp_path, on_error='ignore')


def test_unlabeled_set_builds_slices_in_sorted_order(labelled_dir):
    test_set = UnlabeledImageSet(labelled_dir / '1')
    assert test_set.get_files() == ['0.png', '1.jpg', '2.png', '3.png']
    names, images = test_set.build(1, 3)
    assert names == ['1.jpg', '2.png'] and [im.shape for im in images] == [(13, 14), (16, 16)]
    assert test_set.file_name(0).endswith('1.jpg')


@pytest.mark.parametrize('prefetch', [True, False])
def test_iter_slices_yields_what_build_reads_slice_by_slice(tmp_path, prefetch):
    from pydnn2.data import write_plankton_images
    _, test_dir = write_plankton_images(tmp_path, per_class=1, num_unlabeled=23, num_classes=2)
    test_set = UnlabeledImageSet(test_dir)
    whole_names, whole_images = test_set.build()
    got = []
    for names, images in test_set.iter_slices(5, start=2, prefetch=prefetch):
        assert len(names) == len(images) <= 5
        assert test_set.file_name(0).endswith(names[0])   # files: the slice handed out
        got += list(zip(names, images))
    assert [n for n, _ in got] == whole_names[2:]
    assert all((a == b).all() for (_, a), b in zip(got, whole_images[2:]))
    assert [len(n) for n, _ in test_set.iter_slices(10, stop=21, prefetch=prefetch)] == [10, 10, 1]
    with pytest.raises(ConfigError, match='slice_size'):
        next(test_set.iter_slices(0))


def test_transparent_and_16_bit_images_are_shown_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)  # one opaque black pixel; the rest transparent black
    Image.fromarray(rgba).save(tmp_path / 'a.png')
    image = read_image(tmp_path / 'a.png')
    assert image[0, 0] == 0 and (image.ravel()[1:] == 255).all()
    Image.fromarray(np.full((2, 2), 65535, np.uint16)).save(tmp_path / 'b.png')
    assert (read_image(tmp_path / 'b.png') == 255).all()


def test_parallel_map_keeps_order_and_raises_the_first_error():
    assert parallel_map(lambda v: v * v, range(50), workers=2) == [v * v for v in range(50)]

    def fail_on_7(v):
        if v == 7:
            raise DataError('seven')
        return v

    with pytest.raises(DataError, match='seven'):
        parallel_map(fail_on_7, range(2000), workers=2, progress=False)


def test_parallel_map_uses_threads_only_for_items_slow_enough_to_gain_from_them(monkeypatch):
    import threading
    import time

    from pydnn2.data import reader

    def record(delay):
        def fn(v):
            time.sleep(delay)
            return v, threading.get_ident()
        return fn

    monkeypatch.setattr(reader, 'THREADS_FROM', 0.5)   # no item is that slow, even under load
    fast = parallel_map(record(0), range(300), progress=False)
    assert [v for v, _ in fast] == list(range(300))
    assert {t for _, t in fast} == {threading.get_ident()}       # one thread: faster here
    slow = parallel_map(record(0.002), range(60), progress=False, workers=4)
    assert [v for v, _ in slow] == list(range(60))
    assert len({t for _, t in slow}) > 1                          # an explicit pool is kept
    monkeypatch.setattr(reader, 'THREADS_FROM', 0.001)  # every item sleeps 2 ms: slower
    auto = parallel_map(record(0.002), range(60), progress=False)
    assert [v for v, _ in auto] == list(range(60))
    assert len({t for _, t in auto[16:]}) > 1                     # slow items: a pool


def test_the_plankton_like_folder_is_121_classes_of_varied_sizes_drawn_the_same_each_time(
        tmp_path):
    from pydnn2.data import write_plankton_images
    train_dir, test_dir = write_plankton_images(tmp_path / 'a', per_class=2, num_unlabeled=5)
    image_set = DirectoryLabeledImageSet(train_dir)
    images, classes, _ = image_set.build()
    assert len(image_set.get_labels()) == 121 and np.bincount(classes).tolist() == [2] * 121
    sizes = {image.shape for image in images}
    assert len(sizes) > 100 and min(min(s) for s in sizes) >= 15    # of their own sizes
    for image in images[:20]:
        assert image[0, 0] > 200 and image.min() < 120                # dark shapes on white
    again, _ = write_plankton_images(tmp_path / 'b', per_class=2, num_unlabeled=5)
    first = os.path.join(train_dir, 'star_03', sorted(os.listdir(os.path.join(train_dir,
                                                                              'star_03')))[0])
    second = first.replace(str(tmp_path / 'a'), str(tmp_path / 'b'))
    assert open(first, 'rb').read() == open(second, 'rb').read()
    assert sorted(os.listdir(test_dir)) == ['1.jpg', '2.jpg', '3.jpg', '4.jpg', '5.jpg']
