"""A rank reads its share of a memmap, no more (issue 17): an ArrayPreprocessor over a
numpy.memmap trained one epoch alone and as two torchrun ranks, then predicting
with ``shard=True``. Each process reports its peak resident memory (VmHWM) and the
bytes it read (``rchar``); the file is written first by a process of its own.

Rows are read with pread, never through the mapping, so a process holds a batch
of the file, not the file: its peak is the fixed cost of Python, torch and the net
(about 400 MiB) plus what its batches take. Sharding divides the reading (each rank
reads half the rows, in training and in prediction) and the batches (each rank
holds half of each global batch). So a rank's peak falls towards half of one
process's when the batches outweigh the fixed cost ('wide': a 0.6 GB global batch
of uint8 rows, 2.5 GB as float32), and stays at one process's when they do not
('memmap': batches of 0.8 MB).

A streamed image folder's per-rank figures join as another of :data:`CONFIGS`
(shard_memory_child.KINDS makes its preprocessor).
"""

import json
import os
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, 'train'))
from test_distributed import TORCHRUN, finish, start

CHILD = os.path.join(os.path.dirname(__file__), 'shard_memory_child.py')
#: name: (kind of data, rows, width, global batch): what each rank reads its share of
CONFIGS = {'memmap': ('memmap', 64_000, 784, 256),       # 0.2 GB of float32, 0.8 MB batches
           'wide': ('wide', 3_456, 200_704, 3_072)}      # 0.69 GB of uint8, one 0.6 GB batch
MB = 2 ** 20
pytestmark = [pytest.mark.slow,     # two torchrun launches and a memmap
              pytest.mark.skipif(not os.path.exists('/proc/self/io'), reason='needs /proc'),
              pytest.mark.skipif(not torch.distributed.is_available()
                                 or not torch.distributed.is_gloo_available(),
                                 reason='needs torch.distributed with gloo')]


def recorded(result, rank):
    with open(f'{result}.rank{rank}.json') as f:
        return json.load(f)


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def peaks(request, tmp_path_factory):
    kind, rows, width, batch = CONFIGS[request.param]
    root = tmp_path_factory.mktemp('shard_memory')
    path = root / 'x.data'
    subprocess.run([sys.executable, CHILD, 'write', kind, str(path), str(rows), str(width)],
                   check=True, timeout=300)
    for name in ('one', 'two'):
        (root / name).mkdir()
    args = [CHILD, 'train', kind, path, rows, width, batch]
    finish([start([sys.executable, *args, root / 'one', root / 'one'])], timeout=240)
    finish([start([*TORCHRUN, '--standalone', '--nproc_per_node=2', *args, root / 'two',
                   root / 'two'])], timeout=240)
    os.remove(path)
    return {'config': request.param, 'one': recorded(root / 'one', 0),
            'ranks': [recorded(root / 'two', rank) for rank in (0, 1)]}


def test_each_rank_reads_half_the_rows_in_training_and_in_prediction(peaks):
    one, ranks = peaks['one'], peaks['ranks']
    assert one['train_read'] >= 0.98 * one['data_bytes']    # train + valid: the file, whole
    for rank in ranks:                                      # (less the rows of no batch)
        assert rank['train_read'] <= 0.6 * one['train_read'], (rank, one)
        assert rank['predict_read'] <= 0.6 * one['predict_read'], (rank, one)
    # both ranks gathered every row of the validation and the prediction
    assert ranks[0]['valid_error'] == ranks[1]['valid_error']
    assert ranks[0]['predict_accuracy'] == ranks[1]['predict_accuracy']
    if peaks['config'] == 'memmap':          # trained long enough to learn, the same
        assert ranks[0]['valid_error'] == one['valid_error']
        assert ranks[0]['predict_accuracy'] == one['predict_accuracy'] > 0.5


def test_a_ranks_peak_memory_falls_with_the_ranks_as_far_as_its_batches_weigh(peaks):
    one = peaks['one']['peak']
    bound = 0.6 * one if peaks['config'] == 'wide' else one + 16 * MB
    for rank in peaks['ranks']:
        assert rank['peak'] <= bound, (
            f"rank peak {rank['peak'] / MB:.0f} MiB against one process's {one / MB:.0f} MiB")
