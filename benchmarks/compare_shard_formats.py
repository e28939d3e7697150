"""WebDataset (with wids), MosaicML Streaming and litdata, written and read alike.

The measurement behind pydnn2's sharded format (issue 17; the figures and the
choice are in benchmarks/README.md, "A sharded format"). Each library writes
the same two sets and reads them back, each case in a fresh child process,
the libraries interleaved round by round; the table gives medians.

- ``digits``: scikit-learn's 1,797 digits tiled to 12,000 rows, each a
  ``(1, 8, 8)`` uint8 array and a class (tiny items: the container's cost
  per item dominates).
- ``images``: 1,452 plankton-like JPEGs (``write_plankton_images``, 121
  classes x 12); an item is the JPEG's bytes, read back decoded with Pillow
  and resized to 32 x 32, as from the image folder (``folder``, the same
  files read one by one).

Cases: ``write`` (seconds, bytes on disk), ``seq`` (every item by index, in
order), ``random`` (every item by index, shuffled), ``workers2`` (shuffled
batches of 256 through a ``DataLoader`` with 2 workers, as pydnn2's
LoaderSource reads), ``rank`` (rank 1 of 2's block of every global batch,
shuffled, in this process), ``native`` (the library's own iterable reader,
shuffled, in this process). Reads report items/s and the child's peak RSS.

The libraries need not be installed in the venv: ``--site NAME=PATHS`` puts
PATHS (colon-separated) first on the children's ``PYTHONPATH``, e.g. a
``pip install --target`` folder. Usage::

    python benchmarks/compare_shard_formats.py --rounds 3 \\
        --site litdata=/tmp/t-litdata --site mosaic=/tmp/stub:/tmp/t-mosaic
"""

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

LIBRARIES = ('wids', 'mosaic', 'litdata', 'pydnn2')
CASES = ('write', 'seq', 'random', 'workers2', 'rank', 'native')
ROWS = 12000              # digits rows
PER_CLASS = 12            # plankton images per class (121 classes)
PER_SHARD = 2000          # items per shard (mosaic: bytes, see _write_mosaic)
BATCH = 256
SIDE = 32                 # images are resized to SIDE x SIDE


def make_data(root):
    """The two sets as lists of ``(payload, class)``: digits arrays, image bytes."""
    from pydnn2.data import load_digits, write_plankton_images
    x, y, _ = load_digits()
    reps = -(-ROWS // len(y))
    digits = np.tile(x.astype(np.uint8), (reps, 1, 1, 1))[:ROWS]
    labels = np.tile(y, reps)[:ROWS]
    train = os.path.join(root, 'folder', 'train')
    if not os.path.isdir(train):                     # written once per root
        write_plankton_images(os.path.join(root, 'folder'), per_class=PER_CLASS, num_unlabeled=0,
                              progress=False)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(train) for f in fs)
    classes = sorted(os.listdir(train))
    image_labels = [classes.index(os.path.basename(os.path.dirname(f))) for f in files]
    return {'digits': (digits, labels), 'images': (files, np.array(image_labels))}


def decode_image(data):
    """JPEG bytes -> (1, SIDE, SIDE) uint8, as every reader here does."""
    from PIL import Image
    image = Image.open(io.BytesIO(data)).convert('L')
    image = image.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return np.asarray(image)[None]


# -- writers ------------------------------------------------------------------------------------


def _items(kind, data):
    x, y = data
    for i in range(len(y)):
        payload = x[i] if kind == 'digits' else open(x[i], 'rb').read()
        yield i, payload, int(y[i])


def _write_wids(kind, data, out):
    import webdataset as wds
    ext = 'npy' if kind == 'digits' else 'jpg'
    with wds.ShardWriter(os.path.join(out, 'shard-%06d.tar'), maxcount=PER_SHARD,
                         verbose=0) as sink:
        for i, payload, label in _items(kind, data):
            sink.write({'__key__': f'{i:08d}', ext: payload, 'cls': label})
    n = len(data[1])
    shards = [{'url': os.path.join(out, f'shard-{k:06d}.tar'),
               'nsamples': min(PER_SHARD, n - k * PER_SHARD)}
              for k in range(-(-n // PER_SHARD))]
    with open(os.path.join(out, 'index.json'), 'w') as f:
        json.dump({'wids_version': 1, 'shardlist': shards}, f)


def _write_mosaic(kind, data, out):
    from streaming import MDSWriter
    column = 'ndarray:uint8' if kind == 'digits' else 'bytes'
    size = PER_SHARD * (64 + 40) if kind == 'digits' else PER_SHARD * 2000
    with MDSWriter(out=out, columns={'x': column, 'y': 'int'}, size_limit=size) as sink:
        for _, payload, label in _items(kind, data):
            sink.write({'x': payload, 'y': label})


def _write_litdata(kind, data, out):
    from litdata.streaming.writer import BinaryWriter
    writer = BinaryWriter(out, chunk_size=PER_SHARD)
    for i, payload, label in _items(kind, data):
        writer.add_item(i, {'x': payload, 'y': label})
    writer.done()
    writer.merge()


def _write_pydnn2(kind, data, out):
    from pydnn2.data import write_shards
    items = [(payload, label) for _, payload, label in _items(kind, data)]
    write_shards(out, items, per_shard=PER_SHARD, progress=False)


# -- readers: map-style, and the library's own iterable -----------------------------------------


class MapReader:
    """``reader[i] -> (uint8 tensor, class)`` over one library's files."""

    def __init__(self, library, kind, out, data=None):
        self.library, self.kind, self.out, self.data = library, kind, out, data
        self._ds = None

    def _open(self):
        if self.library == 'wids':
            import wids
            shards = json.load(open(os.path.join(self.out, 'index.json')))['shardlist']
            return wids.ShardListDataset(shards, localname=lambda url: url, transformations=[])
        if self.library == 'mosaic':
            from streaming import LocalDataset
            return LocalDataset(self.out)
        if self.library == 'pydnn2':
            from pydnn2.data import ShardDataset
            size = (SIDE, SIDE) if self.kind == 'images' else None
            return ShardDataset(self.out, image_size=size)
        if self.library == 'litdata':
            from litdata import StreamingDataset
            return StreamingDataset(self.out, batch_decode=0)   # 'auto': 72 items/s at random
        return None                                                  # folder

    def __len__(self):
        return len(self.data[1])

    def __getitem__(self, i):
        import torch
        if self._ds is None and self.library != 'folder':
            self._ds = self._open()
        if self.library == 'folder':
            payload, label = open(self.data[0][i], 'rb').read(), int(self.data[1][i])
        elif self.library == 'pydnn2':
            x, label = self._ds[i]
            return torch.from_numpy(x['images']), label
        elif self.library == 'wids':
            sample = self._ds[i]
            key = '.npy' if self.kind == 'digits' else '.jpg'
            raw = sample[key].read()
            payload = np.load(io.BytesIO(raw)) if self.kind == 'digits' else raw
            label = int(sample['.cls'].read())
        else:
            sample = self._ds[i]
            payload, label = sample['x'], int(sample['y'])
        x = payload if self.kind == 'digits' else decode_image(payload)
        return torch.from_numpy(np.ascontiguousarray(x, np.uint8)), label


def native(library, kind, out):
    """The library's own shuffled iterable reader: yields ``(x, class)``."""
    if library == 'wids':
        import webdataset as wds
        ext = 'npy' if kind == 'digits' else 'jpg'
        urls = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith('.tar'))
        stream = wds.WebDataset(urls, shardshuffle=len(urls), empty_check=False).shuffle(1000)
        for s in stream:
            x = np.load(io.BytesIO(s[ext])) if kind == 'digits' else decode_image(s[ext])
            yield x, int(s['cls'])
        return
    if library == 'mosaic':
        from streaming import StreamingDataset
        ds = StreamingDataset(local=out, shuffle=True, batch_size=BATCH)
    else:
        from litdata import StreamingDataset
        ds = StreamingDataset(out, shuffle=True)
    for s in ds:
        yield (s['x'] if kind == 'digits' else decode_image(s['x'])), int(s['y'])


def read_case(case, reader, n):
    """Items read by ``case`` (see the module)."""
    import torch
    from torch.utils.data import DataLoader
    if case == 'native':
        return sum(1 for _ in native(reader.library, reader.kind, reader.out))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    if case == 'seq':
        order = torch.arange(n)
    if case in ('seq', 'random'):
        for i in order.tolist():
            reader[i]
        return n
    steps = n // BATCH
    blocks = order[:steps * BATCH].view(steps, BATCH)
    if case == 'rank':
        blocks = blocks[:, BATCH // 2:]                        # rank 1 of 2: (steps, 128)
    workers = 2 if case == 'workers2' else 0
    loader = DataLoader(reader, batch_sampler=[b.tolist() for b in blocks], num_workers=workers)
    return sum(len(y) for _, y in loader)


def child(args):
    """One case in this process; prints one JSON line."""
    import torch
    torch.set_num_threads(1)
    out = os.path.join(args.root, args.library, args.kind)
    data = make_data(args.root)[args.kind]
    if args.case == 'write':
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        t = time.perf_counter()
        globals()[f'_write_{args.library}'](args.kind, data, out)
        seconds = time.perf_counter() - t
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
        print(json.dumps({'seconds': seconds, 'bytes': size}))
        return
    reader = MapReader(args.library, args.kind, out, data)
    t = time.perf_counter()
    items = read_case(args.case, reader, len(data[1]))
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'items': items, 'seconds': seconds, 'rate': items / seconds, 'rss_mb': rss}))


def run(args, library, kind, case, sites):
    env = dict(os.environ, LITDATA_DISABLE_VERSION_CHECK='1')
    if library in sites:
        env['PYTHONPATH'] = sites[library] + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [sys.executable, __file__, '--child', '--root', args.root, '--library', library,
           '--kind', kind, '--case', case]
    if args.offline:
        cmd = ['unshare', '-n'] + cmd
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        return {'error': (done.stderr.strip().splitlines() or ['?'])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--root', default=None)
    parser.add_argument('--site', action='append', default=[])
    parser.add_argument('--libraries', default=','.join(LIBRARIES))
    parser.add_argument('--offline', action='store_true', help='children run with no network')
    parser.add_argument('--child', action='store_true')
    parser.add_argument('--library')
    parser.add_argument('--kind')
    parser.add_argument('--case')
    args = parser.parse_args()
    if args.child:
        return child(args)
    args.root = args.root or tempfile.mkdtemp(prefix='shard-formats-')
    sites = dict(s.split('=', 1) for s in args.site)
    make_data(args.root)
    libraries = args.libraries.split(',')
    results = {}
    for r in range(args.rounds):
        for kind in ('digits', 'images'):
            for library in libraries + (['folder'] if kind == 'images' else []):
                for case in CASES:
                    if case == 'native' and library == 'pydnn2' or \
                            library == 'folder' and case in ('write', 'native'):
                        continue
                    got = run(args, library, kind, case, sites)
                    results.setdefault((kind, library, case), []).append(got)
                    print(r, kind, library, case, got, flush=True)
    report(results)


def report(results):
    """The medians, one line per set, library and case."""
    print('\nset     library  case      median')
    for (kind, library, case), runs in sorted(results.items()):
        good = [g for g in runs if 'error' not in g]
        if not good:
            print(f'{kind:7} {library:8} {case:9} error: {runs[0]["error"]}')
        elif case == 'write':
            seconds = statistics.median(g['seconds'] for g in good)
            print(f'{kind:7} {library:8} {case:9} {seconds:.2f} s,'
                  f' {good[0]["bytes"] / 1e6:.2f} MB')
        else:
            print(f'{kind:7} {library:8} {case:9} {statistics.median(g["rate"] for g in good):.0f}'
                  f' items/s, peak RSS {statistics.median(g["rss_mb"] for g in good):.0f} MB')


if __name__ == '__main__':
    main()
