"""Hypothesis fills image folders with whatever a disk may hold: images of every
Pillow mode and size, damaged and truncated files, random bytes, empty files,
hidden files, subfolders, dangling and looping symbolic links. Reading them
must give images or a pydnn2 error, never a raw exception; with
``on_error='skip'`` an unreadable file never stops the read.
"""

import io
import os
import shutil
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pydnn2.data import DirectoryLabeledImageSet, UnlabeledImageSet
from pydnn2.errors import DataError, Pydnn2Error

MODES = ('L', 'RGB', 'RGBA', 'LA', 'P', '1', 'I;16', 'I', 'F', 'CMYK')


def _image_bytes(mode, size, fmt, seed):
    pixels = np.random.RandomState(seed).randint(0, 255, size[::-1] + (4,)).astype(np.uint8)
    image = Image.fromarray(pixels, 'RGBA').convert(mode if mode != 'I;16' else 'I')
    if mode == 'I;16':
        image = Image.fromarray((np.asarray(image) * 200).astype(np.uint16))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


FORMATS = {'L': 'png', 'RGB': 'jpeg', 'RGBA': 'png', 'LA': 'png', 'P': 'gif', '1': 'bmp',
           'I;16': 'png', 'I': 'tiff', 'F': 'tiff', 'CMYK': 'tiff'}

good_files = st.builds(lambda mode, w, h, seed: ('good', _image_bytes(mode, (w, h),
                                                                      FORMATS[mode], seed)),
                       st.sampled_from(MODES), st.integers(1, 40), st.integers(1, 40),
                       st.integers(0, 10_000))
damaged_files = st.builds(lambda good, cut, flips: ('bad', _damage(good[1], cut, flips)),
                          good_files, st.floats(0.05, 0.95),
                          st.lists(st.integers(0, 10_000), max_size=8))
junk_files = st.one_of(st.binary(max_size=300).map(lambda b: ('bad', b)),
                       st.just(('bad', b'')))
entries = st.one_of(good_files, damaged_files, junk_files,
                    st.sampled_from([('hidden', b'.'), ('subfolder', b''), ('loop', b''),
                                     ('dangling', b'')]))


def _damage(data, cut, flips):
    data = bytearray(data[:max(1, int(len(data) * cut))])
    for i in flips:
        data[i % len(data)] ^= 0xFF
    return bytes(data)


def _write(folder, contents):
    os.makedirs(folder, exist_ok=True)
    for i, (kind, payload) in enumerate(contents):
        name = os.path.join(folder, f'{i:03d}.img')
        if kind == 'hidden':
            name = os.path.join(folder, f'.hidden{i}')
            open(name, 'wb').close()
        elif kind == 'subfolder':
            os.makedirs(os.path.join(folder, f'sub{i}'))
            with open(os.path.join(folder, f'sub{i}', 'x.png'), 'wb') as f:
                f.write(_image_bytes('L', (3, 3), 'png', i))
        elif kind == 'loop':
            os.symlink(name, name)
        elif kind == 'dangling':
            os.symlink(os.path.join(folder, 'nowhere'), name)
        else:
            with open(name, 'wb') as f:
                f.write(payload)


def _read(make):
    """Images, or the pydnn2 error; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return make()
        except Pydnn2Error as error:
            assert str(error)                        # says something
            return error


def _check_images(images):
    for image in images:
        assert image.dtype == np.uint8 and image.ndim in (2, 3) and min(image.shape) >= 1


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(classes=st.lists(st.lists(entries, max_size=5), min_size=1, max_size=3))
def test_labelled_folders_read_images_or_raise_pydnn2_errors(classes):
    root = tempfile.mkdtemp()
    try:
        for c, contents in enumerate(classes):
            _write(os.path.join(root, f'class{c}'), contents)
        raised = _read(lambda: DirectoryLabeledImageSet(root).build())
        skipped = _read(lambda: DirectoryLabeledImageSet(root, on_error='skip').build())
        readable = any(kind == 'good' for contents in classes for kind, _ in contents)
        if isinstance(skipped, Pydnn2Error):
            # skipping stops only when nothing at all can be labelled
            assert isinstance(skipped, DataError)
            assert not readable or all(
                all(kind != 'good' for kind, _ in contents) or not contents
                for contents in classes)
        else:
            images, labels, files = skipped
            _check_images(images)
            assert len(images) == len(labels) == len(files)
            assert len(images) >= sum(kind == 'good' for c in classes for kind, _ in c)
        if not isinstance(raised, Pydnn2Error):
            _check_images(raised[0])
    finally:
        shutil.rmtree(root)


@pytest.mark.filterwarnings('ignore::UserWarning')
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(contents=st.lists(entries, max_size=8), start=st.integers(0, 4),
       size=st.integers(1, 5))
def test_unlabelled_folders_read_images_or_raise_pydnn2_errors(contents, start, size):
    root = tempfile.mkdtemp()
    try:
        _write(root, contents)
        result = _read(lambda: UnlabeledImageSet(root, on_error='skip').build())
        assert not isinstance(result, Pydnn2Error), result
        names, images = result
        _check_images(images)
        assert len(names) == len(images) >= sum(kind == 'good' for kind, _ in contents)
        got = []
        for chunk_names, chunk in UnlabeledImageSet(root, on_error='skip').iter_slices(
                size, start=start):
            _check_images(chunk)
            got += chunk_names
        assert got == [n for n in names if n in got] and set(got) <= set(names)
        strict = _read(lambda: UnlabeledImageSet(root).build())
        if not isinstance(strict, Pydnn2Error):
            _check_images(strict[1])
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize('mode', MODES)
def test_every_mode_reads_as_grey_levels_and_colour(tmp_path, mode):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'x.img').write_bytes(_image_bytes(mode, (7, 5), FORMATS[mode], 1))
    grey, _, _ = DirectoryLabeledImageSet(tmp_path).build()
    colour, _, _ = DirectoryLabeledImageSet(tmp_path, color=True).build()
    assert grey[0].shape == (5, 7) and colour[0].shape == (3, 5, 7)
