"""Reading data: built-in small data sets, labelled image folders, the threaded reader.

``load_digits`` returns scikit-learn's bundled 8x8 digits in pydnn2's
``(x, classes, file_indices)`` form, so examples and tests need no download.

:class:`DirectoryLabeledImageSet` reads a folder with one subfolder per
class, :class:`UnlabeledImageSet` a folder of images to classify. Images are
read with Pillow (any format it knows: PNG, JPEG, BMP, TIFF, ...), in a
pool of threads (Pillow decodes without holding the GIL, so every core
works) with a progress bar for large folders. They come back as a list of
arrays of their own sizes: ``(H, W)`` grey levels by default, ``(3, H, W)``
with ``color=True``. Names starting with a dot (hidden files and folders)
are ignored everywhere.

:func:`write_shards` writes a labelled set as WebDataset tar shards and
:class:`ShardDataset` reads them back by index, a map-style torch
``Dataset`` for :class:`~pydnn2.preprocess.DatasetPreprocessor`.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from PIL import Image
>>> root = tempfile.mkdtemp()
>>> for label in ('cat', 'dog'):
...     os.mkdir(os.path.join(root, label))
...     for i in range(3):
...         Image.fromarray(np.full((4 + i, 5), 200, np.uint8)).save(
...             os.path.join(root, label, f'{i}.png'))
>>> image_set = DirectoryLabeledImageSet(root)
>>> images, classes, files = image_set.build()
>>> image_set.get_labels(), classes.tolist(), images[1].shape
(['cat', 'dog'], [0, 0, 0, 1, 1, 1], (5, 5))
>>> os.path.relpath(image_set.file_name(files[4]), root)
'dog/1.png'
"""

from .digits import DIGIT_FOLDERS, DIGIT_MAX_ANGLE, load_digits, write_digit_images
from .folders import DirectoryLabeledImageSet, UnlabeledImageSet
from .imagefiles import ImageFiles
from .plankton import write_plankton_images
from .reader import PROGRESS_MIN_ITEMS, decode_image, parallel_map, read_image, read_images
from .shards import ShardDataset, write_shards

__all__ = ['load_digits', 'write_digit_images', 'write_plankton_images',
           'DirectoryLabeledImageSet', 'UnlabeledImageSet', 'ImageFiles', 'read_image',
           'read_images', 'decode_image', 'parallel_map', 'write_shards', 'ShardDataset',
           'DIGIT_FOLDERS', 'DIGIT_MAX_ANGLE', 'PROGRESS_MIN_ITEMS']
