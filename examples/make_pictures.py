"""Draw one picture of each kind pydnn2 makes (the pictures in the README).

1. A small conv net on scikit-learn's 8x8 digits (``ArrayPreprocessor``),
   trained with a decaying learning rate and two final epochs on all the
   data: its **learning curves**.
2. An image-folder net, as in ``examples/images.py``: digits drawn at
   random sizes and angles into a folder of PNG and JPEG files
   (``write_digit_images``), read by ``DirectoryLabeledImageSet``, served
   by ``Rotator360``, trained for two epochs only, so that it still makes
   mistakes worth showing. Its **confusion matrix** and **worst mistakes**
   (with their files) on the validation set, **image tiles** of the files
   as read, and the **augmentation**: training images as read and as
   served next epoch. The interpretation's text report is printed.

Run it with ``python examples/make_pictures.py [folder]`` (default
``docs/pictures``); it takes about 15 seconds on two CPU cores.
"""

import os
import sys
import tempfile
import time

import numpy as np

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.evaluate.interpret import interpret
from pydnn2.evaluate.plots import (plot_augmentation, plot_confusion, plot_history,
                                   plot_images, plot_mistakes)


def learning_curves(folder, work, epochs=12):
    """Train a small net on the digits arrays; draw its learning curves."""
    rng = np.random.RandomState(1234)
    sets = preprocess.split_training_data(data.load_digits(), 64, 70, 15, 15, rng=rng)
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 64, rng, name='digits',
                output_dir=work, verbose=False)
    net.add_convolution(16, (3, 3), (1, 1))                     # (16, 6, 6)
    net.add_hidden(64)
    net.add_dropout()
    net.add_logistic()
    net.train(nn.Adam(learning_rate=nn.LearningRateDecay(0.01, 0.1)), epochs=epochs,
              final_epochs=2, verbose=False)
    plot_history(net.history, title='learning curves of a small net on the 8x8 digits',
                 path=os.path.join(folder, 'learning_curves.png'))


def image_net(work, num_images, epochs):
    """The image-folder workflow: write, read, split, Rotator360, train."""
    rng = np.random.RandomState(1234)
    data.write_digit_images(work, num_images, num_unlabeled=0)
    image_set = data.DirectoryLabeledImageSet(os.path.join(work, 'train'), progress=False)
    sets = preprocess.split_training_data(image_set.build(), 32, 70, 20, 10, rng=rng)
    angle = data.DIGIT_MAX_ANGLE
    pre = preprocess.Rotator360(sets, (28, 28), preprocess.StretchResizer(), rng,
                                rotation_range=(-angle, angle), flip_lr=False,
                                stretch=(0.9, 1.1), progress=False)
    net = nn.NN(pre, 'images', 10, 32, rng, name='digit_images', output_dir=work,
                verbose=False)
    net.add_convolution(16, (5, 5), (2, 2))                     # (16, 12, 12)
    net.add_convolution(32, (3, 3), (2, 2))                     # (32, 5, 5)
    net.merge_data_channel('shapes')
    net.add_hidden(128)
    net.add_dropout()
    net.add_logistic()
    net.train(nn.Adam(learning_rate=nn.LearningRateDecay(0.003, 0.1)), epochs=epochs,
              verbose=False)
    return net, image_set


def image_pictures(folder, net, image_set):
    """Confusion matrix, worst mistakes, tiles and augmentation of the image net."""
    labels = image_set.get_labels()
    interp = interpret(net, 'valid', class_names=labels)
    print(interp.report(3))
    plot_confusion(interp, path=os.path.join(folder, 'confusion_matrix.png'))
    plot_mistakes(interp, count=12, cols=6, file_names=image_set.file_name,
                  path=os.path.join(folder, 'worst_mistakes.png'))
    raw = net.preprocessor.get_raw_x()[0]['images'][:12]
    files = net.preprocessor.get_files()[0][:12]
    names = [os.path.basename(image_set.file_name(f)) for f in files]
    plot_images(raw, titles=names, cols=6, suptitle='training images as read from the folder',
                path=os.path.join(folder, 'image_tiles.png'))
    plot_augmentation(net, count=8, class_names=labels,
                      path=os.path.join(folder, 'augmentation.png'))


def main(folder='docs/pictures', num_images=1000, epochs=2):
    started = time.perf_counter()
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='pydnn2-pictures-') as work:
        learning_curves(folder, work)
        net, image_set = image_net(work, num_images, epochs)
        image_pictures(folder, net, image_set)
    written = sorted(name for name in os.listdir(folder) if name.endswith('.png'))
    print(f'wrote {", ".join(written)} to {folder} in {time.perf_counter() - started:.0f} s')
    return written


if __name__ == '__main__':
    main(*sys.argv[1:2])
