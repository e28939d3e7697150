"""The sharded format against the image folder it was written from, and against num_workers.

A plankton-like folder (``write_plankton_images``: 121 classes, ``--per-class``
JPEGs each, of their own sizes) is written once, then converted with
:func:`pydnn2.data.write_shards` (each image's bytes stored as they are).
Each image is decoded with Pillow and resized to 32 x 32 grey levels:

* ``folder``: a map-style dataset over the files (``open`` + decode + resize);
* ``shards``: :class:`pydnn2.data.ShardDataset` over the shards
  (``pread`` + decode + resize);

each through a plain ``DataLoader`` over the loop's shuffled batches with 0,
1 and 2 workers, the shards also as rank 1 of 2 (its half of every global
batch), and both once as the loop itself reads them (``loop``:
``LoaderSource``, which seeds and checks every item). Candidates run interleaved, A B A B ...
(``--rounds``); the figures are medians, and the ratios paired medians
(each round against its neighbour in time), which survive a change of the
machine's load better than the rates do. Run:
``.venv/bin/python benchmarks/bench_shards.py [--quick]``.
"""

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (fmt_rate, header, interleave, median, paired_ratio, parse_args,
                    scratch_dir, write_json)
from pydnn2.data import ShardDataset, read_image, write_plankton_images, write_shards
from pydnn2.preprocess.loader import LoaderOptions, LoaderSource, first_item
from pydnn2.preprocess.sources import EpochPlan, Shard, batch_rows

SIDE = 32
BATCH = 128
WORKERS = (0, 1, 2)


class FolderImages(torch.utils.data.Dataset):
    """Image files and their classes, each read, decoded and resized when asked for."""

    def __init__(self, files, labels):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image
        image = Image.fromarray(read_image(self.files[i])).resize((SIDE, SIDE),
                                                                  Image.Resampling.BILINEAR)
        return {'images': np.array(image)[None]}, int(self.labels[i])


def folder_files(train):
    """``(files, classes)`` of a class-per-subfolder folder, classes by sorted name."""
    classes = sorted(os.listdir(train))
    files = [(os.path.join(train, c, f), k) for k, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(train, c)))]
    return [f for f, _ in files], np.array([k for _, k in files])


def size_of(folder):
    """Bytes of the files under ``folder``."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def one_pass(dataset, workers, shard=None, loop=False):
    """A timed candidate: one shuffled pass of this rank's rows of every global batch,
    through a plain ``DataLoader`` over the loop's batches, or (``loop``) as pydnn2's
    loop reads a dataset (``LoaderSource``: every item seeded and checked)."""
    shard = Shard() if shard is None else shard
    spec = first_item(dataset, 'images', 'the dataset')
    source = LoaderSource(dataset, spec, 'images', 'the dataset',
                          options=LoaderOptions(num_workers=workers))
    seed = [0]

    def run():
        seed[0] += 1
        plan = EpochPlan(batch_size=BATCH, shard=shard,
                         order=torch.Generator().manual_seed(seed[0]))
        if loop:
            return sum(len(y) for _, y in source.batches(plan))
        rows = [r.tolist() for r in batch_rows(len(dataset), plan)]
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=rows, num_workers=workers)
        return sum(len(y) for _, y in loader)

    return run


def main():
    args = parse_args(__doc__.split('\n')[0])
    per_class = 8 if args.quick else 40
    rounds = args.rounds or (1 if args.quick else 3)
    root = scratch_dir()
    header(f'bench_shards: {121 * per_class:,} plankton JPEGs, shards against the folder')
    train, _ = write_plankton_images(root, per_class=per_class, num_unlabeled=0, progress=False)
    files, labels = folder_files(train)
    started = time.perf_counter()
    items = [(open(f, 'rb').read(), int(k)) for f, k in zip(files, labels)]
    index = write_shards(os.path.join(root, 'shards'), items, per_shard=1000, progress=False)
    wrote = time.perf_counter() - started
    print(f'write_shards: {wrote:.2f} s; folder {size_of(train) / 1e6:.2f} MB in {len(files):,} '
          f'files, shards {size_of(os.path.dirname(index)) / 1e6:.2f} MB', flush=True)
    folder = FolderImages(files, labels)
    shards = ShardDataset(index, image_size=(SIDE, SIDE))
    rows = len(files) // BATCH * BATCH
    candidates, run = {}, {}
    for w in WORKERS:
        run[f'folder w={w}'] = one_pass(folder, w)
        run[f'shards w={w}'] = one_pass(shards, w)
    run['shards rank 1/2 w=0'] = one_pass(shards, 0, Shard(1, 2))
    run['folder loop w=0'] = one_pass(folder, 0, loop=True)
    run['shards loop w=0'] = one_pass(shards, 0, loop=True)
    candidates = {name: (lambda: None, r) for name, r in run.items()}
    times = interleave(candidates, rounds)
    results = report(times, rows)
    write_json(args.json, results)


def report(times, rows):
    """Print rates and paired ratios; return them as a list of dicts."""
    results = []
    for name, seconds in times.items():
        served = rows // 2 if 'rank' in name else rows
        rate = served / median(seconds)
        print(f'{name:20} {fmt_rate(rate):>8} images/s', flush=True)
        results.append({'name': name, 'rate': rate})
    for w in WORKERS:
        ratio = paired_ratio(times[f'folder w={w}'], times[f'shards w={w}'])
        print(f'shards / folder, {w} workers: {ratio:.2f}')
        results.append({'name': f'shards/folder w={w}', 'ratio': ratio})
    for kind in ('folder', 'shards'):
        for w in WORKERS[1:]:
            ratio = paired_ratio(times[f'{kind} w=0'], times[f'{kind} w={w}'])
            print(f'{kind}: {w} workers / 0 workers: {ratio:.2f}')
            results.append({'name': f'{kind} w={w}/w=0', 'ratio': ratio})
    ratio = paired_ratio(times['folder loop w=0'], times['shards loop w=0'])
    print(f'shards / folder, read as the loop reads (LoaderSource), 0 workers: {ratio:.2f}')
    results.append({'name': 'shards/folder loop w=0', 'ratio': ratio})
    half = paired_ratio(times['shards w=0'], times['shards rank 1/2 w=0'])
    print(f'shards: rank 1 of 2 takes {1 / half:.2f} of the time of the whole pass')
    return results


if __name__ == '__main__':
    main()
