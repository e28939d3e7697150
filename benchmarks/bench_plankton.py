"""Plankton scale: reading a Kaggle-sized image folder and predicting over it in slices.

The Kaggle plankton data had 30,336 labelled training images (121 classes)
and 130,400 unlabelled test images. This benchmark writes a folder of that
size with :func:`pydnn2.data.write_plankton_images` (251 images per class:
30,371, and 130,400 test images), then measures, in one process, against
the loop a user would write by hand (``plain``: ``Image.open(path)
.convert('L')``, resized to the net's 48x48 input, one file after the
other):

* **build**: ``DirectoryLabeledImageSet(train).build()``, every training
  image read into memory (at its own size: resizing is the preprocessor's
  job), against the plain loop reading the same files, with and without
  the resize;
* **data path**: the test folder ``--slice`` images at a time through
  ``UnlabeledImageSet.iter_slices`` and the preprocessor (resized, scaled,
  on the device: everything ``predict`` does but the net), against the
  plain read-and-resize loop;
* **stream**: the same slices through ``net.predict`` (a small conv net:
  conv 8 5x5 - pool 2x2 - logistic 121), as ``examples/plankton.py``
  writes its submission, against the plain loop feeding the same module by
  hand (read, resize, scale, forward under ``torch.inference_mode``,
  softmax);
* **memory**: the resident set size after each slice of the stream (flat:
  each slice's images are dropped before the next but one is read).

Candidates run interleaved (A B A B ..., ``--rounds``), and each ratio is
the median over rounds of the plain loop's time over pydnn2's (pydnn2's
images/s over the plain loop's; >= 0.9 is issue 10's target).
Run: ``.venv/bin/python benchmarks/bench_plankton.py [--quick]``.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common
from pydnn2 import data
from pydnn2 import neuralnet as nn
from pydnn2 import preprocess as pp

SHAPE = (48, 48)


def rss_mib():
    """The resident set size now, in MiB (Linux)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def peak_mib():
    """The peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_read(paths, resize=True):
    """The hand-written loop: open, grey, resize, to an array; one file at a time."""
    if not resize:
        return [np.asarray(Image.open(path).convert('L')) for path in paths]
    out = np.empty((len(paths),) + SHAPE, np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i] = np.asarray(image.convert('L').resize(SHAPE[::-1], Image.Resampling.BILINEAR))
    return out


def plain_stream(net, paths, slice_size):
    """The hand-written prediction: plain_read per slice, scaled as the net's
    preprocessor scales, through the same module (1,024 rows at a time), softmax."""
    pre, module = net.preprocessor, net.module.eval()
    mean, std = pre._stats['image_mean'], pre._stats['image_std']
    out = []
    with torch.inference_mode():                    # the net reads no 'shapes'
        for start in range(0, len(paths), slice_size):
            x = torch.from_numpy(plain_read(paths[start:start + slice_size]))
            x = x.unsqueeze(1).float().sub_(mean).div_(std)
            for i in range(0, len(x), 1024):
                out.append(torch.softmax(module({'images': x[i:i + 1024]}), 1))
    return torch.cat(out)


def make_net(images, classes):
    """A small plankton net on a sample of the training images (one short epoch)."""
    rng = np.random.RandomState(0)
    sets = pp.split_training_data((images, classes), 64, 80, 10, 10)
    pre = pp.Rotator360(sets, SHAPE, pp.StretchResizer(), rng, 'float32')
    net = nn.NN(pre, 'images', 121, 64, rng, nn.relu, name='bench', output_dir=tempfile.mkdtemp())
    net.add_convolution(8, (5, 5), (2, 2))
    net.add_logistic()
    net.train(nn.Adam(learning_rate=1e-3), epochs=1, verbose=False)
    pre.progress = False
    return net


def stream(net, test_set, slice_size):
    """Predict every test image, ``slice_size`` at a time; the RSS after each slice."""
    total, rss = 0, []
    for names, images in test_set.iter_slices(slice_size):
        _, probabilities = net.predict({'images': images})
        assert probabilities.shape == (len(names), 121)
        total += len(names)
        del names, images, probabilities
        rss.append(round(rss_mib(), 1))
    return total, rss


def data_path(pre, test_set, slice_size):
    """Everything ``predict`` does over the slices but the net."""
    total = 0
    for _, images in test_set.iter_slices(slice_size):
        total += len(pre.preprocess({'images': images})['images'])
    return total


def interleaved(rounds, **candidates):
    """``common.interleave`` of plain functions, without warm-up rounds (the first
    build has warmed the page cache)."""
    return common.interleave({name: (lambda: None, fn) for name, fn in candidates.items()},
                             rounds, warmup=0)


def paired(seconds, reference, candidate):
    """``common.paired_ratio`` of two candidates' seconds."""
    return common.paired_ratio(seconds[reference], seconds[candidate])


def folders(args):
    """The generated folders (written unless ``--folder`` already holds them)."""
    per_class, num_test = (25, 13040) if args.quick else (251, 130400)
    root = args.folder or tempfile.mkdtemp(prefix='pydnn2-plankton-')
    train_dir, test_dir = os.path.join(root, 'train'), os.path.join(root, 'test')
    if not (os.path.isdir(test_dir) and len(os.listdir(test_dir)) == num_test):
        started = time.perf_counter()
        data.write_plankton_images(root, per_class, num_test, progress=False)
        print(f'wrote {per_class * 121} + {num_test} images in '
              f'{time.perf_counter() - started:.0f} s')
    return root, train_dir, test_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='a tenth of the size')
    parser.add_argument('--slice', type=int, default=16300, help='images per prediction slice')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds')
    parser.add_argument('--folder', help='reuse (or write) the images here')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    root, train_dir, test_dir = folders(args)
    train_set = data.DirectoryLabeledImageSet(train_dir, progress=False)
    paths = [os.path.join(train_dir, label, name) for name, label in train_set.get_files()]
    images, classes, _ = train_set.build()               # also warms the page cache
    net = make_net(images[:6000], classes[:6000])
    del images, classes
    test_set = data.UnlabeledImageSet(test_dir, progress=False)
    test_paths = [os.path.join(test_dir, n) for n in test_set.get_files()]
    plain_read(test_paths[:20000])
    reads = interleaved(args.rounds, plain_read=lambda: plain_read(paths, False),
                        plain_read_resize=lambda: plain_read(paths), build=train_set.build)
    pre, size = net.preprocessor, args.slice
    paths_ = interleaved(args.rounds, plain=lambda: plain_read(test_paths),
                         data_path=lambda: data_path(pre, test_set, size))
    rss_before = rss_mib()
    streams = interleaved(max(1, args.rounds - 1),
                          hand=lambda: plain_stream(net, test_paths, size),
                          stream=lambda: stream(net, test_set, size))
    _, rss = stream(net, test_set, size)
    m, n = len(paths), len(test_paths)
    rate = lambda count, seconds: round(count / common.median(seconds))  # noqa: E731
    r = {'train_images': m, 'test_images': n, 'slice': size, 'rounds': args.rounds,
         'cores': os.cpu_count(), 'load_average': os.getloadavg()[0],
         'build': rate(m, reads['build']), 'plain_read': rate(m, reads['plain_read']),
         'plain_read_resize': rate(m, reads['plain_read_resize']),
         'build_ratio_read': paired(reads, 'plain_read', 'build'),
         'build_ratio_read_resize': paired(reads, 'plain_read_resize', 'build'),
         'data_path': rate(n, paths_['data_path']),
         'plain_test_read_resize': rate(n, paths_['plain']),
         'data_path_ratio': paired(paths_, 'plain', 'data_path'),
         'stream': rate(n, streams['stream']), 'hand_stream': rate(n, streams['hand']),
         'stream_ratio': paired(streams, 'hand', 'stream'),
         'rss_before_stream_mib': round(rss_before, 1), 'rss_after_each_slice_mib': rss,
         'peak_rss_mib': round(peak_mib(), 1)}
    print(f"build      {r['build']:6d} images/s; plain read {r['plain_read']:6d} "
          f"(ratio {r['build_ratio_read']:.2f}), plain read+resize {r['plain_read_resize']:6d} "
          f"(ratio {r['build_ratio_read_resize']:.2f})")
    print(f"data path  {r['data_path']:6d} images/s; plain read+resize "
          f"{r['plain_test_read_resize']:6d} (ratio {r['data_path_ratio']:.2f})")
    print(f"stream     {r['stream']:6d} images/s; by hand {r['hand_stream']:6d} "
          f"(ratio {r['stream_ratio']:.2f})")
    print(f'RSS before the streams {rss_before:.0f} MiB; after each slice of the last one '
          f"{rss}; peak {r['peak_rss_mib']:.0f} MiB; load average {r['load_average']:.1f}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([r], f, indent=1)
    if not args.folder:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
