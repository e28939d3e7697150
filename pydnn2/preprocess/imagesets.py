"""The raw image sets an image preprocessor takes, checked: lists of decoded images
(pydnn's way), or :class:`~pydnn2.data.ImageFiles` not yet read (a streamed folder).

>>> train = ([np.full((3, 4), 9, np.uint8)] * 2, [0, 1])
>>> test = ([np.full((5, 4), 9, np.uint8)], [1])
>>> [len(images) for images, _, _ in parse_sets((train, test, test), None, 'pre')]
[2, 1, 1]
"""

import numpy as np

from ..data.imagefiles import ImageFiles
from ..errors import DataError
from .pixels import as_image
from .split import SET_NAMES, as_labels


def num_channels(image):
    """Channels of one raw image: 1 for ``(H, W)``, ``C`` for ``(C, H, W)``."""
    return 1 if image.ndim == 2 else image.shape[0]


def set_channels(images):
    """Channels of the images of a set (the first's; files say without being read)."""
    return images.channels if isinstance(images, ImageFiles) else num_channels(images[0])


def image_list(x, where, channels=None, files=True):
    """Raw images, validated: all must have ``channels`` (default: the first's).

    :class:`~pydnn2.data.ImageFiles` are kept unread when ``files``, else read
    (every file must be readable)."""
    if isinstance(x, dict):
        if 'images' not in x:
            raise DataError(f'the {where} has channels {sorted(x)}; expected an '
                            f"'images' channel of raw images")
        x = x['images']
    if isinstance(x, ImageFiles):
        if channels is not None and x.channels != channels:
            raise DataError(f'the {where} holds files read with {x.channels} channel(s); '
                            f'expected {channels}')
        if files:
            return x
        x = x.read_all()[0]
    if isinstance(x, np.ndarray) and (x.ndim in (3, 4) or x.dtype == object):
        x = list(x)  # (N, H, W), (N, C, H, W) or N objects -> N images
    if not isinstance(x, (list, tuple)):
        raise DataError(f'the {where} must be a list of images; received '
                        f'{type(x).__name__}')
    images = [as_image(image, f'image {i} of the {where}') for i, image in enumerate(x)]
    for i, image in enumerate(images):
        channels = channels or num_channels(image)
        if num_channels(image) != channels:
            raise DataError(f'image {i} of the {where} has {num_channels(image)} '
                            f'channel(s) (shape {image.shape}); expected {channels}')
    return images


def parse_sets(data, channels, owner):
    """The three sets ``(train, valid, test)`` of
    :func:`~pydnn2.preprocess.split_training_data`, each checked into ``(images,
    classes, file indices)``; ``owner`` names the preprocessor in errors. The sets
    are all lists of images or all :class:`~pydnn2.data.ImageFiles`."""
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise DataError(f'{owner} needs the three sets returned by '
                        f'split_training_data: (train, valid, test); received '
                        f'{type(data).__name__}')
    sets = []
    for name, part in zip(SET_NAMES, data):
        if not isinstance(part, (tuple, list)) or len(part) not in (2, 3):
            raise DataError(f'the {name} set must be (images, classes) or '
                            f'(images, classes, file_indices)')
        images = image_list(part[0], f'{name} set', channels)
        channels = channels or (set_channels(images) if len(images) else None)
        y = as_labels(part[1], f'{name} classes')
        files = np.asarray(part[2] if len(part) == 3 else np.arange(len(images)), np.int64)
        if len(y) != len(images) or len(files) != len(images):
            raise DataError(f'the {name} set has {len(images)} images but {len(y)} classes '
                            f'and {len(files)} file indices')
        if not len(images) and name == 'train':
            raise DataError(f'the {name} set is empty; it needs at least one image')
        sets.append((images, y, files))
    return _alike(sets, owner)


def _alike(sets, owner):
    """The sets, refused unless all lists of images or all image files (an empty list
    becomes an empty selection of the files)."""
    files = [images for images, _, _ in sets if isinstance(images, ImageFiles)]
    if not files:
        return sets
    if any(len(images) and not isinstance(images, ImageFiles) for images, _, _ in sets):
        kinds = ['files' if isinstance(images, ImageFiles) else 'images'
                 for images, _, _ in sets]
        raise DataError(f'{owner} needs the three sets alike: all lists of images, or all '
                        f'image files (a streamed folder); received {kinds}')
    return [(images if isinstance(images, ImageFiles) else files[0].take([]), y, index)
            for images, y, index in sets]
