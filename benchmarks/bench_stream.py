"""Streamed image folders (issue 17): reading and training against the in-memory path
and a plain DataLoader + Pillow loop, in one sitting.

A plankton-like folder (:func:`pydnn2.data.write_plankton_images`: 121 classes
of small grey images of their own sizes; ``--images``) is read at 64x64, the
size of pydnn's plankton nets, three ways:

* **plain**: the loop a PyTorch user writes: a ``torch.utils.data.Dataset``
  whose ``__getitem__`` opens the file with Pillow, converts it to grey and
  resizes it (bilinear) to 64x64, read through a ``DataLoader`` (batch 64,
  shuffled, ``--workers`` workers), each batch scaled to ``(x - mean) / 255``;
* **stream**: ``DirectoryLabeledImageSet(train, stream=True)`` split and given
  to ``Rotator360``, its training batches read from ``pre.source('train',
  augment=False)`` (decode, resize, item checks, the ``'shapes'`` channel, the
  same scaling): the same work as the plain loop, with pydnn2's checks;
* **stream+aug**: the same with each batch turned and flipped on the device (what
  training reads);

reported as images/s and as ratios to the plain loop (target: stream >= 0.9),
interleaved over ``--rounds`` rounds (paired medians), then against
``num_workers`` (0, 1, 2, 4). Last, **training**: a small conv net
(conv 16 5x5 - pool 2 - conv 32 3x3 - pool 2 - dense 128 - merged shapes -
logistic 121) trained ``--epochs`` epochs by the in-memory path (the folder
decoded and resized once, ``build`` + ``Rotator360``) and by the streamed one
(files listed, one pass to measure them, every epoch decoded in workers), and
streamed through a decode cache on disk (``decode_cache=``: filled by one
untimed pass, after which epochs read 4 KiB rows), interleaved over the rounds:
the seconds per epoch (validation included) and the one-off preparation. The
in-memory path's epoch is the upper bound the streamed one is held to (>= 0.9)
for a folder whose decoded set would not fit, where the in-memory path cannot
run at all.
Run: ``.venv/bin/python benchmarks/bench_stream.py [--quick]``.
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
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common
from pydnn2 import data
from pydnn2 import neuralnet as nn
from pydnn2 import preprocess as pp
from pydnn2.preprocess.sources import EpochPlan

SHAPE = (64, 64)
BATCH = 64
SPLIT = (90, 10, 0)


class PlainFolder(Dataset):
    """The hand-written dataset: Pillow opens, greys and resizes each file."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as image:
            image = image.convert('L').resize(SHAPE[::-1], Image.Resampling.BILINEAR)
            return torch.from_numpy(np.array(image))[None], i % 121   # (1, H, W) uint8


def plain_epoch(paths, workers, mean):
    """One shuffled pass of the plain loop; returns the images read."""
    loader = DataLoader(PlainFolder(paths), batch_size=BATCH, shuffle=True, drop_last=True,
                        num_workers=workers)
    count = 0
    for x, _ in loader:
        x = x.float().sub_(mean).div_(255.0)
        count += len(x)
    return count


def stream_epoch(pre, augment):
    """One shuffled pass over the streamed training set; returns the images read."""
    plan = EpochPlan(BATCH, order=torch.Generator().manual_seed(0))
    return sum(len(y) for _, y in pre.source('train', augment=augment).batches(plan))


def folder(args):
    """The labelled folder (written, or reused from ``--folder``)."""
    root = args.folder or tempfile.mkdtemp(prefix='pydnn2-stream-')
    train_dir = os.path.join(root, 'train')
    if not os.path.isdir(train_dir):
        per_class = max(2, args.images // 121)
        data.write_plankton_images(root, per_class=per_class, num_unlabeled=0)
    return root, train_dir


def streamed(train_dir, workers, progress=False, decode_cache=None):
    """``Rotator360`` over the streamed folder, reading with ``workers`` workers (through
    a decode cache in the folder ``decode_cache``, if given)."""
    sets = pp.split_training_data(data.DirectoryLabeledImageSet(train_dir, stream=True).build(),
                                  BATCH, *SPLIT)
    return pp.Rotator360(sets, SHAPE, pp.StretchResizer(), np.random.RandomState(0),
                         num_workers=workers, progress=progress, decode_cache=decode_cache)


def reading(pre, paths, args):
    """Interleaved images/s of the plain loop and the streamed reads at ``--workers``."""
    mean = pre.state_dict()['stats']['image_mean']
    pre.num_workers = args.workers
    pre._served.clear()
    runs = {'plain': (lambda: None, lambda: plain_epoch(paths, args.workers, mean)),
            'stream': (lambda: None, lambda: stream_epoch(pre, False)),
            'stream_aug': (lambda: None, lambda: stream_epoch(pre, True))}
    times = common.interleave(runs, args.rounds)
    n = stream_epoch(pre, False)
    rates = {name: n / common.median(seconds) for name, seconds in times.items()}
    return {'images_per_s': {k: round(v) for k, v in rates.items()},
            'stream_ratio': round(common.paired_ratio(times['plain'], times['stream']), 3),
            'stream_aug_ratio': round(common.paired_ratio(times['plain'], times['stream_aug']),
                                      3)}


def worker_sweep(pre, paths, counts):
    """Images/s of the plain loop and the streamed read at each number of workers."""
    mean, out = pre.state_dict()['stats']['image_mean'], {}
    for workers in counts:
        pre.num_workers = workers
        pre._served.clear()
        times = common.interleave({
            'plain': (lambda: None, lambda w=workers: plain_epoch(paths, w, mean)),
            'stream': (lambda: None, lambda: stream_epoch(pre, False))}, 1, warmup=0)
        n = stream_epoch(pre, False) if not out else out['rows']
        out['rows'] = n
        out[workers] = {k: round(n / v[0]) for k, v in times.items()}
        out[workers]['ratio'] = round(times['plain'][0] / times['stream'][0], 3)
    out.pop('rows')
    return out


def make_net(pre, output_dir):
    """The small conv net of the training comparison."""
    net = nn.NN(pre, 'images', 121, BATCH, np.random.RandomState(0), verbose=False,
                output_dir=output_dir, device='cpu')
    net.add_convolution(16, (5, 5), (2, 2))
    net.add_convolution(32, (3, 3), (2, 2))
    net.add_hidden(128)
    net.merge_data_channel('shapes')
    net.add_logistic()
    return net


WAYS = ('in_memory', 'stream', 'cached')


def training(train_dir, args):
    """Preparation seconds, and seconds per epoch of the in-memory, streamed and cached
    paths, interleaved over ``--rounds`` rounds (a new net each time, the same
    preprocessors); the ratios are the medians of each round's in-memory epoch over
    the other path's. The decode cache is filled by one untimed pass first, timed
    apart (``cache_fill_s``), so that its epochs are the ones after its first."""
    pres, out = {}, {'prepare_s': {}, 'epoch_s': {w: [] for w in WAYS}}
    for way in WAYS:
        started = time.perf_counter()
        if way == 'stream':
            pres[way] = streamed(train_dir, args.workers)
        elif way == 'cached':
            pres[way] = streamed(train_dir, args.workers, decode_cache=common.scratch_dir())
        else:
            built = data.DirectoryLabeledImageSet(train_dir, progress=False).build()
            pres[way] = pp.Rotator360(pp.split_training_data(built, BATCH, *SPLIT), SHAPE,
                                      pp.StretchResizer(), np.random.RandomState(0),
                                      progress=False)
        out['prepare_s'][way] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    stream_epoch(pres['cached'], False)
    for _ in pres['cached'].source('valid').batches(EpochPlan(BATCH, whole_batches=False)):
        pass
    out['cache_fill_s'] = round(time.perf_counter() - started, 2)
    for _ in range(args.rounds):
        for way in WAYS:
            history = make_net(pres[way], common.scratch_dir()).train(
                nn.Adam(learning_rate=0.003), epochs=args.epochs, final_epochs=0,
                channels_last=False, progress=False)
            out['epoch_s'][way].append(round(common.median(history['seconds']), 2))
    seconds = out['epoch_s']
    for way in ('stream', 'cached'):
        out[f'{way}_ratio'] = round(common.median(
            [m / t for m, t in zip(seconds['in_memory'], seconds[way])]), 3)
    return out


def report(r):
    """Print the figures."""
    print(common.machine(), f"load average {r['load_average']:.1f}")
    rates = r['read']['images_per_s']
    print(f"read at {r['workers']} workers: plain {rates['plain']:,} images/s, stream "
          f"{rates['stream']:,} (ratio {r['read']['stream_ratio']:.2f}), stream with "
          f"augmentation {rates['stream_aug']:,} (ratio {r['read']['stream_aug_ratio']:.2f})")
    for workers, row in r['workers_sweep'].items():
        print(f"  num_workers={workers}: plain {row['plain']:,}, stream {row['stream']:,} "
              f"images/s (ratio {row['ratio']:.2f})")
    t = r['train']
    for way in WAYS:
        print(f"train {way:9s}: prepare {t['prepare_s'][way]:.1f} s, median epoch of each "
              f"round {t['epoch_s'][way]} s")
    print(f"epoch throughput / in-memory (median of the rounds): streamed {t['stream_ratio']:.2f}"
          f", through the decode cache {t['cached_ratio']:.2f} (filling it: one pass of "
          f"{t['cache_fill_s']:.1f} s); peak RSS {r['peak_rss_mib']:.0f} MiB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='a small folder, one round')
    parser.add_argument('--images', type=int, default=6050, help='images in the folder')
    parser.add_argument('--workers', type=int, default=2, help='DataLoader workers')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds')
    parser.add_argument('--epochs', type=int, default=2, help='training epochs per run')
    parser.add_argument('--threads', type=int, help='torch threads')
    parser.add_argument('--folder', help='reuse (or write) the images here')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.epochs = 1210, 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    root, train_dir = folder(args)
    pre = streamed(train_dir, args.workers)
    files = pre.get_raw_x()[0]['images']
    paths = [files.path(i) for i in range(len(files))]
    r = {'images': len(paths), 'workers': args.workers, 'rounds': args.rounds,
         'load_average': common.load_average(), 'read': reading(pre, paths, args),
         'workers_sweep': worker_sweep(pre, paths, (0, 1, 2, 4)),
         'train': training(train_dir, args),
         'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    report(r)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(r, f, indent=1)
    if not args.folder:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
