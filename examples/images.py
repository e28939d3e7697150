"""The pydnn2 image-folder walk-through: from a folder of image files to predictions.

pydnn was written for folders of small grey images of varied sizes, one
folder per class, where the size of the original image says something about
its class. This script makes such a folder from scikit-learn's digits (no
download): each digit drawn dark on white, at a random size that grows a
little with the digit, turned by a random angle, saved as PNG or JPEG. Then
it runs pydnn's workflow end to end:

1. ``DirectoryLabeledImageSet`` reads the folder (in threads, with progress);
2. ``split_training_data`` splits it into training, validation and test sets;
3. ``Rotator360`` resizes every image once and turns and flips the training
   images anew every epoch on the training device. Digits are not
   rotation-invariant (a 6 turned over is a 9), so the turns stay within
   the +-30 degrees the images were drawn with; plankton would use the
   default full circle;
4. a small conv net merges the ``'shapes'`` channel (the original sizes)
   after its convolutions, shows its size, and trains;
5. the confusion matrices of the three sets, with the mistakes traced back
   to their files;
6. ``predict`` on an ``UnlabeledImageSet`` of images the net has never seen.

Run it with ``python examples/images.py``.
"""

import os
import sys
import tempfile
import time

import numpy as np

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn

def build_net(pre, rng, output_dir):
    net = nn.NN(pre, 'images', 10, 64, rng, nn.relu, name='digit_images',
                output_dir=output_dir)
    net.add_convolution(16, (5, 5), (2, 2))                   # (16, 12, 12)
    net.add_convolution(32, (3, 3), (2, 2))                   # (32, 5, 5)
    net.merge_data_channel('shapes')                          # + original (height, width)
    net.add_hidden(128)
    net.add_dropout()
    net.add_logistic()
    return net


def show_confusion(net, image_set):
    labels = image_set.get_labels()
    for set_name, (matrix, mistakes) in zip(('training', 'validation', 'test'),
                                            net.get_confusion_matrices()):
        total = matrix.sum()
        if total == 0:
            continue                                    # an empty set
        print(f'\n{set_name} set: {100 * np.trace(matrix) / total:.1f}% right of {total}')
        if set_name == 'test':
            print('confusion matrix (rows: actual, columns: predicted):')
            print(matrix)
        for file_index, actual, predicted in mistakes[:5]:
            path = os.path.relpath(image_set.file_name(file_index), image_set.base_dir)
            print(f'  {path}: {labels[actual]} taken for {labels[predicted]}')
        if len(mistakes) > 5:
            print(f'  ... and {len(mistakes) - 5} more mistakes')


def predict_unlabeled(net, folder, truth, labels):
    unlabeled = data.UnlabeledImageSet(folder)
    names, images = unlabeled.build(0, len(unlabeled.get_files()))
    predicted, probabilities = net.predict({'images': images})
    for name, cls, p in list(zip(names, predicted, probabilities))[:5]:
        print(f'  {name}: {labels[cls]} ({100 * p[cls]:.0f}%)')
    right = np.mean([labels[cls] == data.DIGIT_FOLDERS[truth[name]]
                     for name, cls in zip(names, predicted)])
    print(f'unseen images: {100 * right:.1f}% right of {len(names)}')
    return float(right)


def main(output_dir=None, epochs=12, num_images=None):
    started = time.perf_counter()
    output_dir = output_dir or tempfile.mkdtemp(prefix='pydnn2-images-')
    rng = np.random.RandomState(1234)
    unlabeled_dir, truth = data.write_digit_images(output_dir, num_images)

    image_set = data.DirectoryLabeledImageSet(os.path.join(output_dir, 'train'))
    images, classes, files = image_set.build()
    print(f'read {len(images)} images of {len(image_set.get_labels())} classes, sizes from '
          f'{min(im.shape for im in images)} to {max(im.shape for im in images)}')
    sets = preprocess.split_training_data((images, classes, files), 64, 70, 15, 15, rng=rng)
    resizer = preprocess.StretchResizer()
    angle = data.DIGIT_MAX_ANGLE
    pre = preprocess.Rotator360(sets, (28, 28), resizer, rng, rotation_range=(-angle, angle),
                                flip_lr=False)

    net = build_net(pre, rng, output_dir)
    print(net)
    net.net_size()
    net.train(nn.Adam(learning_rate=nn.LearningRateDecay(learning_rate=0.003, decay=0.1)),
              epochs=epochs)

    show_confusion(net, image_set)
    print()
    accuracy = predict_unlabeled(net, unlabeled_dir, truth, image_set.get_labels())
    print(f'done in {time.perf_counter() - started:.1f} s; files in {output_dir}')
    return accuracy


if __name__ == '__main__':
    sys.exit(0 if main() >= 0.8 else 1)
