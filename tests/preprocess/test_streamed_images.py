"""Streamed image folders: files listed, not read, at build; split unread; decoded and
resized in DataLoader workers; served exactly as the in-memory path serves them."""

import os
import pickle

import numpy as np
import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2.data import DirectoryLabeledImageSet, ImageFiles, UnlabeledImageSet
from pydnn2.data import write_plankton_images
from pydnn2.data.imagefiles import PathList
from pydnn2.errors import ConfigError, DataError
from pydnn2.preprocess import (Canonicalizer, Rotator360, Rotator360PlusGeometry,
                               StretchResizer, ThresholdBoxStretchResizer, split_training_data)
from pydnn2.preprocess import streaming
from pydnn2.preprocess.sources import EpochPlan
from pydnn2.preprocess.streaming import ImageFileSource

SHAPE = (16, 16)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """A plankton-like folder: 5 classes of 12 images, and 10 unlabelled images."""
    root = tmp_path_factory.mktemp('plankton')
    return write_plankton_images(str(root), per_class=12, num_unlabeled=10, num_classes=5)


def streamed_split(train_dir, **options):
    """The streamed build of a folder, split."""
    streamed = DirectoryLabeledImageSet(train_dir, stream=True, **options).build()
    return split_training_data(streamed, 8, 60, 20, 20)


def both_splits(train_dir, **options):
    """The in-memory and the streamed build of one folder, split alike."""
    in_memory = DirectoryLabeledImageSet(train_dir, **options).build()
    return split_training_data(in_memory, 8, 60, 20, 20), streamed_split(train_dir, **options)


def test_paths_are_stored_compactly_and_read_back():
    paths = ['a/1.png', 'b/ü ñ.jpg', '', 'c/' + 'x' * 300]
    stored = PathList(paths)
    assert list(stored) == paths and stored[-1] == paths[-1] and stored[1:3] == paths[1:3]
    assert stored.nbytes < sum(len(p.encode()) for p in paths) + 8 * (len(paths) + 1) + 1
    with pytest.raises(IndexError):
        stored[4]
    files = ImageFiles(paths, color=True)
    again = pickle.loads(pickle.dumps(files[[3, 1]]))     # what a spawned worker receives
    assert [again.path(i) for i in range(2)] == [paths[3], paths[1]] and again.channels == 3


def test_a_streamed_build_lists_files_without_reading_them(folder, tmp_path):
    train_dir, _ = folder
    image_set = DirectoryLabeledImageSet(train_dir, stream=True)
    files, classes, indices = image_set.build()
    assert isinstance(files, ImageFiles) and len(files) == 60 == len(classes)
    in_memory = DirectoryLabeledImageSet(train_dir)
    images, same_classes, _ = in_memory.build()
    np.testing.assert_array_equal(classes, same_classes)
    assert [image_set.file_name(i) for i in indices] == in_memory.files
    np.testing.assert_array_equal(files[7], images[7])     # a position reads that file
    broken = tmp_path / 'broken'
    os.makedirs(broken / 'a')
    (broken / 'a' / 'x.png').write_bytes(b'not an image')
    files, _, _ = DirectoryLabeledImageSet(str(broken), stream=True).build()   # nothing read
    with pytest.raises(DataError, match='x.png'):
        files[0]


def test_the_split_of_a_streamed_folder_selects_the_same_files_unread(folder):
    in_memory, streamed = both_splits(folder[0])
    for (images, y, index), (files, y2, index2) in zip(in_memory, streamed):
        assert isinstance(files, ImageFiles) and len(files) == len(images)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(index, index2)
        if len(images):
            np.testing.assert_array_equal(files[len(files) - 1], images[-1])


def batches_of(pre, name, epochs=2, batch_size=8):
    """Every batch of ``epochs`` passes over set ``name``, shuffled from one seed."""
    order = torch.Generator().manual_seed(5)
    return [list(pre.source(name).batches(EpochPlan(batch_size, order=order)))
            for _ in range(epochs)]


@pytest.mark.parametrize('cls, workers', [(Rotator360, 2), (Rotator360PlusGeometry, 0),
                                          (Canonicalizer, 0)])
@pytest.mark.slow
def test_a_streamed_preprocessor_serves_the_in_memory_batches(folder, cls, workers,
                                                              monkeypatch):
    in_memory, streamed = both_splits(folder[0])
    resizer = ThresholdBoxStretchResizer(200)
    reference = cls(in_memory, SHAPE, resizer, np.random.RandomState(3))
    pre = cls(streamed, SHAPE, resizer, np.random.RandomState(3), num_workers=workers)
    assert pre.shapes() == reference.shapes()
    for key, value in reference.state_dict()['stats'].items():
        np.testing.assert_allclose(np.asarray(pre.state_dict()['stats'][key]),
                                   np.asarray(value), rtol=1e-6, atol=1e-6, err_msg=key)
    assert isinstance(pre.source('train'), ImageFileSource) and pre.source('train').varies
    for name in ('train', 'valid', 'all'):
        for ours, theirs in zip(batches_of(pre, name), batches_of(reference, name)):
            assert len(ours) == len(theirs) > 0
            for (x, y), (x_ref, y_ref) in zip(ours, theirs):
                torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
                assert set(x) == set(x_ref)
                for channel in x:
                    torch.testing.assert_close(x[channel], x_ref[channel], rtol=1e-5,
                                               atol=1e-5)
    monkeypatch.setattr(streaming, 'READ_BATCH', 4)      # evaluation passes: 4 rows a read
    plan = EpochPlan(4096, whole_batches=False)
    assert [len(y) for _, y in pre.source('all', augment=False).batches(plan)] == \
        [4] * (pre.num_rows('all') // 4)
    x, y = pre.source('all', augment=False).whole()
    x_ref, y_ref = reference.source('all', augment=False).whole()
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for channel in x:
        torch.testing.assert_close(x[channel], x_ref[channel], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(pre.labels('all'), reference.labels('all'))
    np.testing.assert_array_equal(pre.source('valid').labels(), reference.labels('valid'))


def small_net(pre, output_dir):
    net = nn.NN(pre, 'images', 5, 8, np.random.RandomState(0), verbose=False,
                output_dir=str(output_dir), device='cpu')
    net.add_convolution(4, (3, 3), (2, 2))
    net.merge_data_channel('shapes')
    net.add_hidden(16)
    net.add_logistic()
    return net


@pytest.mark.slow
def test_a_streamed_net_trains_saves_loads_and_predicts_as_the_in_memory_one(folder, tmp_path):
    train_dir, test_dir = folder
    in_memory, streamed = both_splits(train_dir)
    nets, histories = [], []
    for sets, options in ((in_memory, {}), (streamed, {'num_workers': 2})):
        pre = Rotator360(sets, SHAPE, StretchResizer(), np.random.RandomState(1), **options)
        net = small_net(pre, tmp_path / f'run{len(nets)}')
        histories.append(net.train(nn.Adam(learning_rate=0.01), epochs=2, final_epochs=1))
        nets.append(net)
    reference, net = nets
    assert histories[1].keys() == histories[0].keys()
    for key in ('train_loss', 'valid_loss', 'valid_error', 'test_error'):
        ours, theirs = ([np.nan if v is None else v for v in h[key]] for h in histories[::-1])
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, err_msg=key)
    for (name, ours), theirs in zip(net.module.state_dict().items(),
                                    reference.module.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)
    loaded = nn.load(nn.save(net, str(tmp_path / 'streamed.pt')))
    names, files = UnlabeledImageSet(test_dir, stream=True).build()
    same_names, images = UnlabeledImageSet(test_dir).build()
    assert isinstance(files, ImageFiles) and names == same_names
    classes, probabilities = loaded.predict({'images': files}, batch_size=4)
    np.testing.assert_allclose(probabilities, reference.predict({'images': images})[1],
                               rtol=1e-4, atol=1e-6)
    assert len(classes) == len(names) == 10
    loaded.preprocessor.set_data(streamed)          # a loaded net given the files again
    np.testing.assert_allclose(loaded.get_outputs('valid'), reference.get_outputs('valid'),
                               rtol=1e-4, atol=1e-6)
    for (matrix, mistakes), (matrix_ref, mistakes_ref) in zip(
            loaded.get_confusion_matrices(), reference.get_confusion_matrices()):
        np.testing.assert_array_equal(matrix, matrix_ref)
        assert mistakes == mistakes_ref


def linked_copy(source, target):
    """``source``'s class folders again under ``target``, file by file (hard links)."""
    for label in sorted(os.listdir(source)):
        os.makedirs(os.path.join(target, label))
        for name in os.listdir(os.path.join(source, label)):
            os.link(os.path.join(source, label, name), os.path.join(target, label, name))
    return str(target)


def test_an_unreadable_file_is_named_when_attached_or_skipped(folder, tmp_path):
    root = linked_copy(folder[0], tmp_path / 'copy')
    broken = os.path.join(root, sorted(os.listdir(root))[2], '0-broken.jpg')
    with open(broken, 'wb') as f:
        f.write(b'\xff\xd8 truncated')
    streamed = streamed_split(root, on_error='raise')        # listing reads nothing
    with pytest.raises(DataError, match='0-broken.jpg'):
        Rotator360(streamed, SHAPE, StretchResizer(), 0, num_workers=2)
    streamed = streamed_split(root, on_error='skip')
    with pytest.warns(UserWarning, match=r'skipped 1 unreadable image file.*0-broken.jpg'):
        pre = Rotator360(streamed, SHAPE, StretchResizer(), 0, num_workers=0)
    held = [pre.get_raw_x()[i]['images'] for i in range(3)]
    paths = [files.path(i) for files in held for i in range(len(files))]
    split = [files.path(i) for files, _, _ in streamed for i in range(len(files))]
    assert broken in split and sorted(paths) == sorted(set(split) - {broken})
    assert sum(pre.num_rows(n) for n in ('train', 'valid', 'test')) == len(split) - 1
    assert pre.source('test').labels().tolist() == pre.labels('test').tolist()


def test_a_file_lost_after_attaching_is_a_data_error_naming_it(folder, tmp_path):
    streamed = streamed_split(linked_copy(folder[0], tmp_path / 'copy'))
    pre = Rotator360(streamed, SHAPE, StretchResizer(), 0, num_workers=0)
    lost = streamed[0][0].path(3)
    os.remove(lost)
    with pytest.raises(DataError, match=os.path.basename(lost)):
        batches_of(pre, 'train', epochs=1)


def test_streamed_sets_refuse_what_they_cannot_do(folder):
    with pytest.raises(ConfigError, match="on_error='skip'"):
        UnlabeledImageSet(folder[1], stream=True, on_error='skip')
    in_memory, streamed = both_splits(folder[0])
    mixed = (streamed[0], in_memory[1], streamed[2])
    with pytest.raises(DataError, match='all lists of images, or all image files'):
        Rotator360(mixed, SHAPE, StretchResizer(), 0)
    colour = DirectoryLabeledImageSet(folder[0], color=True, stream=True).build()
    pre = Rotator360(streamed, SHAPE, StretchResizer(), 0, num_workers=0)
    with pytest.raises(DataError, match='3 channel'):
        pre.set_data(split_training_data(colour, 8, 60, 20, 20))


def test_a_streamed_pass_resumed_at_a_batch_serves_the_rest_of_the_same_pass(folder):
    pre = Rotator360(streamed_split(folder[0]), SHAPE, StretchResizer(), 0, num_workers=2)
    state, order = pre.random_state(), torch.Generator().manual_seed(9)
    shuffle = order.get_state()
    whole = list(pre.source('train').batches(EpochPlan(8, order=order)))
    pre.set_random_state(state)
    order.set_state(shuffle)
    rest = list(pre.source('train').batches(EpochPlan(8, order=order, start=2)))
    assert len(rest) == len(whole) - 2 > 0
    for (x, y), (x_ref, y_ref) in zip(rest, whole[2:]):
        assert torch.equal(y, y_ref) and torch.equal(x['images'], x_ref['images'])
        assert torch.equal(x['shapes'], x_ref['shapes'])


class _Halving(StretchResizer):
    """A user's stretch resizer of its own: its arrays, not the Pillow shortcut."""

    def _resize(self, image, size):
        return StretchResizer._resize(self, image, size) // 2


@pytest.mark.parametrize('resizer', [StretchResizer(), _Halving(), ThresholdBoxStretchResizer(9)])
def test_resizing_a_pillow_image_equals_resizing_its_array(folder, resizer):
    files = streamed_split(folder[0])[0][0]
    colour = ImageFiles(files.paths, color=True, index=files.index)
    for i, size in ((0, SHAPE), (1, (7, 40)), (2, files.read(2).shape)):
        for images in (files, colour):
            for training in (False, True):
                array = (resizer.training if training else resizer.prediction)(
                    images.read(i), size)
                np.testing.assert_array_equal(
                    resizer.resize_image(images.open(i), size, training), array)
