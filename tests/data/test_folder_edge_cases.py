"""Image folders as users really have them: symbolic links that loop, folders
inside class folders, photos with an EXIF orientation, 32-bit TIFFs."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pydnn2.data import DirectoryLabeledImageSet, UnlabeledImageSet, read_image
from pydnn2.errors import ConfigError, DataError


@pytest.fixture
def classes_dir(tmp_path):
    """Two class folders of two small PNGs each."""
    for label in ('a', 'b'):
        (tmp_path / label).mkdir()
        for k in range(2):
            Image.fromarray(np.full((5, 6), 40 * k, np.uint8)).save(tmp_path / label / f'{k}.png')
    return tmp_path


def test_a_symlink_loop_is_an_error_naming_it(classes_dir):
    os.symlink('loop', classes_dir / 'a' / 'loop')
    with pytest.raises(DataError, match=r"cannot read '.*loop'.*on_error='skip'"):
        DirectoryLabeledImageSet(classes_dir).build()
    with pytest.raises(DataError, match='loop'):
        UnlabeledImageSet(classes_dir / 'a').build()


def test_a_symlink_loop_is_skipped_with_a_warning_on_error_skip(classes_dir):
    os.symlink('loop', classes_dir / 'a' / 'loop')
    os.symlink('other', classes_dir / 'other')            # a loop among the class folders
    with pytest.warns(UserWarning, match='loops') as caught:
        images, classes, _ = DirectoryLabeledImageSet(classes_dir, on_error='skip').build()
    assert len(images) == 4 and classes.tolist() == [0, 0, 1, 1]
    assert all(w.filename == __file__ for w in caught)    # the warning points at our line
    with pytest.warns(UserWarning, match='loops'):
        names, _ = UnlabeledImageSet(classes_dir / 'a', on_error='skip').build()
    assert names == ['0.png', '1.png']


def test_folders_inside_a_class_folder_are_named_in_a_warning(classes_dir):
    (classes_dir / 'b' / 'more').mkdir()
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(classes_dir / 'b' / 'more' / 'x.png')
    (classes_dir / 'b' / '.hidden').mkdir()                # hidden folders stay silent
    image_set = DirectoryLabeledImageSet(classes_dir)
    with pytest.warns(UserWarning, match=r"class folder 'b'.*not read.*\['more'\]"):
        images, _, _ = image_set.build()
    assert len(images) == 4


def test_no_warning_for_class_folders_of_files_only(classes_dir):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        DirectoryLabeledImageSet(classes_dir).build()


def test_unlabeled_build_refuses_slice_bounds_that_are_not_integers(classes_dir):
    test_set = UnlabeledImageSet(classes_dir / 'a')
    with pytest.raises(ConfigError, match='start must be an integer; received 0.5'):
        test_set.build(0.5)
    with pytest.raises(ConfigError, match="stop must be an integer or None; received '2'"):
        test_set.build(0, '2')
    assert test_set.build(-1)[0] == ['1.png']              # slices as Python's do


def tall_picture():
    """8 rows x 4 columns: the top half black, the bottom white."""
    picture = np.full((8, 4), 255, np.uint8)
    picture[:4] = 0
    return picture


def test_jpeg_exif_orientation_is_applied(tmp_path):
    # a camera held sideways stores the picture turned; orientation 6 says "turn it
    # 90 degrees clockwise to show it"
    stored = np.rot90(tall_picture())                      # (4, 8): as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / 'photo.jpg', quality=100,
                                                       exif=exif)
    image = read_image(tmp_path / 'photo.jpg')
    assert image.shape == (8, 4)
    assert np.abs(image.astype(int) - tall_picture()).max() < 40
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / 'plain.jpg', quality=100)
    assert read_image(tmp_path / 'plain.jpg').shape == (4, 8)   # no tag: as stored


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
       b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


@pytest.mark.parametrize('name, options', [
    ('photo.png', {'exif': 'exif'}),         # PNG's eXIf chunk
    ('photo.png', {'pnginfo': 'xmp'}),       # PNG's XMP text
    ('photo.jpg', {'xmp': XMP, 'quality': 100}),     # JPEG's XMP segment
])
def test_an_orientation_in_png_exif_or_in_xmp_is_applied(tmp_path, name, options):
    stored = np.ascontiguousarray(np.rot90(tall_picture()))
    if options.get('exif') == 'exif':
        exif = Image.Exif()
        exif[0x0112] = 6
        options = {'exif': exif}
    elif options.get('pnginfo') == 'xmp':
        info = PngImagePlugin.PngInfo()
        info.add_itxt('XML:com.adobe.xmp', XMP.decode())
        options = {'pnginfo': info}
    Image.fromarray(stored).save(tmp_path / name, **options)
    image = read_image(tmp_path / name)
    assert image.shape == (8, 4)
    assert np.abs(image.astype(int) - tall_picture()).max() < 40
    Image.fromarray(stored).save(tmp_path / f'plain_{name}')
    assert read_image(tmp_path / f'plain_{name}').shape == (4, 8)   # no tag: as stored


def test_32_bit_tiffs_are_scaled_by_their_largest_value(tmp_path):
    values = np.array([[0, 2 ** 20], [2 ** 23, 2 ** 24]], np.int32)
    Image.fromarray(values).save(tmp_path / 'deep.tif')
    assert Image.open(tmp_path / 'deep.tif').mode == 'I'
    assert read_image(tmp_path / 'deep.tif').tolist() == [[0, 16], [128, 255]]
    sixteen = np.array([[0, 257], [32896, 65535]], np.int32)    # 32-bit file, 16-bit values
    Image.fromarray(sixteen).save(tmp_path / 'sixteen.tif')
    assert read_image(tmp_path / 'sixteen.tif').tolist() == [[0, 1], [128, 255]]
    negative = np.array([[-5, 100]], np.int32)
    Image.fromarray(negative).save(tmp_path / 'negative.tif')
    assert read_image(tmp_path / 'negative.tif').tolist() == [[0, 100]]
