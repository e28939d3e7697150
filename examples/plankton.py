#!/usr/bin/env python3
"""pydnn's plankton workflow, end to end, on pydnn2.

A port of pydnn's ``examples/plankton/plankton.py`` (the Kaggle National Data
Science Bowl): an *experiment* is a small configuration object (the image
shape, the split, the preprocessor and resizer, the learning rule and its
annealer, and ``build_net``, which adds the layers); :func:`run_experiment`
trains it, writes the submission files of the final and the best nets, and
the confusion matrices and mistakes of the best net as CSV files;
:func:`analyze_confusion_matrix` then reports, class by class, its share of
the data against its share of the errors and what it is most confused with.

The Kaggle images cannot be downloaded here, so by default the script draws a
plankton-like folder (121 classes of grey shapes on white, see
:func:`pydnn2.data.write_plankton_images`). Point it at the real data with::

    python3 examples/plankton.py --train DIR --test DIR --output DIR

Run as it is: ``python3 examples/plankton.py`` (about a minute on two cores).
"""

import argparse
import csv
import gzip
import os
import sys
import tempfile
import time

import numpy as np

from pydnn2 import data
from pydnn2 import neuralnet as nn
from pydnn2 import preprocess as pp

config = {}
train_set = None
test_set = None


def configure(input_train, input_test, output, dtype='float32'):
    """Set the folders the experiments read and write (pydnn read them from a
    config file): the labelled images, the unlabelled test images, the output."""
    global train_set, test_set
    config.update(input_train=input_train, input_test=input_test, output=output,
                  input_post=output, dtype=dtype)
    os.makedirs(output, exist_ok=True)
    train_set = data.DirectoryLabeledImageSet(input_train, config['dtype'])
    test_set = data.UnlabeledImageSet(input_test)


def write_submission_csv_file(file_name, probs, image_file_names):
    """Kaggle's submission file: gzipped CSV, one row per image, one column per class."""
    with gzip.open(file_name, 'wt', newline='') as out:
        writer = csv.writer(out)
        writer.writerow(['image'] + train_set.get_labels())
        for name, row in zip(image_file_names, probs):
            writer.writerow([name] + [f'{p:.6g}' for p in row])


def generate_submission_file(net, name, num=None, slice_size=16300):
    """Predict the test images ``slice_size`` at a time (memory stays flat; the
    next slice is read while this one is predicted) and write the submission
    file; ``num`` limits how many (default: all)."""
    num = len(test_set.get_files()) if num is None else num
    probabilities, files = [], []
    print('generating probabilities...')
    for names, images in test_set.iter_slices(slice_size, stop=num):
        _, probs = net.predict({'images': images})
        probabilities.append(probs)
        files += names
    print('writing csv file...')
    write_submission_csv_file(name, np.vstack(probabilities), files)


def load_net_and_generate_submission_file(net_name, submission_name):
    """A saved net's submission file."""
    print('loading net')
    generate_submission_file(nn.load(net_name), submission_name)


def write_confusion_matrices_to_csv_files(experiment, num_images, matrices):
    """The confusion matrix of each set (rows actual, columns predicted) and its
    mistakes (file, right class, wrong class) as CSV files."""
    labels = train_set.get_labels()
    for (matrix, mistakes), set_name in zip(matrices, ['train', 'valid', 'test']):
        stem = os.path.join(config['output'], f'{experiment}_{{}}_{set_name}.csv')
        with open(stem.format('conf_mtrx'), 'w', newline='') as out:
            writer = csv.writer(out)
            writer.writerow([''] + labels)
            writer.writerows([label] + [int(v) for v in row] for label, row in zip(labels, matrix))
        with open(stem.format('mistakes'), 'w', newline='') as out:
            writer = csv.writer(out)
            writer.writerow(['file', 'right', 'wrong'])
            writer.writerows([train_set.file_name(f), labels[right], labels[wrong]]
                             for f, right, wrong in mistakes)


def make_confusion_matrix_from_saved_network(e):
    """The confusion-matrix files of an experiment's saved best net."""
    print('making confusion matrices...')
    sets = pp.split_training_data(train_set.build(e.num_images), e.batch_size, e.train_pct,
                                  e.valid_pct, e.test_pct)
    net = nn.load(os.path.join(config['input_post'], e.name + '_best_net.pt'))
    net.preprocessor.set_data(sets)
    write_confusion_matrices_to_csv_files(e.name, e.num_images, net.get_confusion_matrices())


def read_confusion_matrix(matrix_file):
    """The class names and the matrix of a file written by
    :func:`write_confusion_matrices_to_csv_files`."""
    with open(matrix_file, newline='') as f:
        rows = list(csv.reader(f))
    return rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]])


def analyze_confusion_matrix(matrix_file, top=10):
    """pydnn's report on a confusion matrix, as text: the most common classes, and
    for the worst classes (by mistakes, then by share of mistakes) their share of
    the data (their fair share of the errors), their share of the errors, and
    what they are most often confused with."""
    labels, matrix = read_confusion_matrix(matrix_file)
    total, bad = matrix.sum(1), matrix.sum(1) - np.diag(matrix)
    pct_bad = np.divide(bad, total, out=np.zeros(len(bad)), where=total > 0)
    lines = [f'total predictions: {total.sum()}', f'total bad predictions: {bad.sum()}',
             'most common classes (regardless of error rate): '
             + ', '.join(labels[i] for i in np.argsort(-total, kind='stable')[:top])]
    for title, order in (('number', np.argsort(-bad, kind='stable')),
                         ('percent', np.argsort(-pct_bad, kind='stable'))):
        lines.append(f'---------- worst classes by {title} ----------')
        lines += _worst(labels, matrix, order[:top], total, bad)
    return '\n'.join(lines)


def _worst(labels, matrix, classes, total, bad):
    lines = []
    for c in classes:
        if not bad[c]:
            continue
        fair, share = total[c] / total.sum(), bad[c] / bad.sum()
        row = matrix[c].copy()
        row[c] = 0
        confused = [(labels[j], int(row[j])) for j in np.argsort(-row, kind='stable')[:10]
                    if row[j] > 0]
        lines += [(f'class {labels[c]}: {total[c]} predictions, {bad[c]} bad; fair share of '
                   f'error {fair:.3%}, contribution to error {share:.3%} '
                   f'({share / fair:.3f} times its fair share)'),
                  f'    most often confused with {confused}']
    return lines


def make_resizer(e, rng):
    """The experiment's resizer, made as pydnn's run_experiment made it."""
    if e.resizer == pp.StochasticStretchResizer:
        return e.resizer(rng, e.stochastic_stretch_range)
    if e.resizer in (pp.ThresholdBoxPreserveAspectRatioResizer, pp.ThresholdBoxStretchResizer):
        return e.resizer(e.box_threshold)
    if e.resizer in (pp.ContiguousBoxPreserveAspectRatioResizer, pp.ContiguousBoxStretchResizer):
        return e.resizer(e.contiguous_box_threshold)
    return e.resizer()


def run_experiment(e):
    """Train an experiment; write its submissions (final and best net) and the best
    net's confusion matrices and mistakes; return the best net."""
    print(f'############## {e.name} ################')
    print('start time: ' + time.strftime('%Y-%m-%d %H:%M:%S'))
    rng = np.random.RandomState(e.rng_seed)
    sets = pp.split_training_data(train_set.build(e.num_images), e.batch_size, e.train_pct,
                                  e.valid_pct, e.test_pct)
    preprocessor = e.preprocessor(sets, e.image_shape, make_resizer(e, rng), rng,
                                  config['dtype'])
    net = nn.NN(preprocessor=preprocessor, channel='images', num_classes=121,
                batch_size=e.batch_size, rng=rng, activation=e.activation, name=e.name,
                output_dir=config['output'])
    e.build_net(net)
    try:
        net.train(updater=e.learning_rule, epochs=e.epochs, final_epochs=e.final_epochs,
                  l1_reg=e.l1_reg, l2_reg=e.l2_reg)
    finally:
        print(f'Experiment "{e.name}" ended')
    output = lambda suffix: os.path.join(config['output'], e.name + suffix)  # noqa: E731
    print('generating probabilities based on final network...')
    generate_submission_file(net, output('_submission_final.csv.gz'), e.num_submission_images)
    net = nn.load(output('_best_net.pt'))
    print('generating probabilities based on best network...')
    generate_submission_file(net, output('_submission_best.csv.gz'), e.num_submission_images)
    print('generating and writing confusion matrix based on best network...')
    net.preprocessor.set_data(sets)
    write_confusion_matrices_to_csv_files(e.name, e.num_images, net.get_confusion_matrices())
    print('end time: ' + time.strftime('%Y-%m-%d %H:%M:%S'))
    return net


class Experiment:
    """A small experiment in pydnn's style: Rotator360 on 48x48 images, two
    convolutions, the original size merged, Adam with a decaying rate."""

    def __init__(e, epochs=12):
        e.name = 'plankton'
        e.batch_size = 32
        e.image_shape = (48, 48)
        e.num_images = None
        e.num_submission_images = None
        e.epochs, e.final_epochs = epochs, 1
        e.train_pct, e.valid_pct, e.test_pct = 80, 10, 10
        e.rng_seed = 13579
        e.learning_rule = nn.Adam(learning_rate=nn.LearningRateDecay(0.002, 0.05))
        e.activation = nn.relu
        e.l1_reg, e.l2_reg = 0.0, 0.0
        e.resizer = pp.StretchResizer
        e.preprocessor = pp.Rotator360

    def build_net(e, n):
        """The layers."""
        n.add_convolution(16, (5, 5), (2, 2))
        n.add_convolution(32, (3, 3), (2, 2))
        n.add_dropout(0.25)
        n.merge_data_channel('shapes')
        n.add_hidden(128)
        n.add_dropout(0.5)
        n.add_logistic()


def main(argv=None):
    """Run :class:`Experiment` on the given folders or on a generated plankton-like one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--train', help='folder of class folders (default: generated)')
    parser.add_argument('--test', help='folder of unlabelled images')
    parser.add_argument('--output', help='where the files go (default: a temporary folder)')
    parser.add_argument('--per-class', type=int, default=25, help='generated images per class')
    parser.add_argument('--epochs', type=int, default=12)
    args = parser.parse_args(argv)
    output = args.output or tempfile.mkdtemp(prefix='pydnn2-plankton-')
    if args.train is None:
        args.train, args.test = data.write_plankton_images(
            os.path.join(output, 'images'), per_class=args.per_class, num_unlabeled=500)
    configure(args.train, args.test, output)
    experiment = Experiment(args.epochs)
    run_experiment(experiment)
    report = analyze_confusion_matrix(os.path.join(output, 'plankton_conf_mtrx_test.csv'))
    print(report)
    print(f'files in {output}')
    return report


if __name__ == '__main__':
    main(sys.argv[1:])
