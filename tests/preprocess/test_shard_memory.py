"""A rank reads its share of a memmap, no more (issue 17): an ArrayPreprocessor over a
numpy.memmap trained one epoch alone and as two torchrun ranks, then predicting
with ``shard=True``. Each process reports its peak resident memory (VmHWM) and the
bytes it read (``rchar``); the file is written first by a process of its own.

Memory is already bounded by a batch in one process (rows are read with pread,
never through the mapping), so a rank's peak stays where one process's is: it
does not grow with the ranks. What sharding divides is the reading: each rank
reads half the rows in training and in prediction.

A streamed image folder's per-rank figures join as another of :data:`KINDS`
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
ROWS, WIDTH = 64_000, 784                  # 0.2 GB of float32
KINDS = ['memmap']                         # the data each rank reads its share of
MB = 2 ** 20
pytestmark = [pytest.mark.slow,     # two torchrun launches and a memmap
              pytest.mark.skipif(not os.path.exists('/proc/self/io'), reason='needs /proc'),
              pytest.mark.skipif(not torch.distributed.is_available()
                                 or not torch.distributed.is_gloo_available(),
                                 reason='needs torch.distributed with gloo')]


def recorded(result, rank):
    with open(f'{result}.rank{rank}.json') as f:
        return json.load(f)


@pytest.fixture(scope='module', params=KINDS)
def peaks(request, tmp_path_factory):
    root = tmp_path_factory.mktemp('shard_memory')
    path = root / 'x.f32'
    subprocess.run([sys.executable, CHILD, 'write', str(path), str(ROWS), str(WIDTH)],
                   check=True, timeout=300)
    for name in ('one', 'two'):
        (root / name).mkdir()
    args = [CHILD, 'train', request.param, path, ROWS, WIDTH]
    finish([start([sys.executable, *args, root / 'one', root / 'one'])], timeout=240)
    finish([start([*TORCHRUN, '--standalone', '--nproc_per_node=2', *args, root / 'two',
                   root / 'two'])], timeout=240)
    return {'one': recorded(root / 'one', 0),
            'ranks': [recorded(root / 'two', rank) for rank in (0, 1)]}


def test_each_rank_reads_half_the_rows_in_training_and_in_prediction(peaks):
    one = peaks['one']
    assert one['train_read'] >= one['data_bytes']          # train + valid: the whole file
    for rank in peaks['ranks']:
        assert rank['train_read'] <= 0.6 * one['train_read'], (rank, one)
        assert rank['predict_read'] <= 0.6 * one['predict_read'], (rank, one)
        assert rank['valid_error'] == one['valid_error']
        assert rank['predict_accuracy'] == one['predict_accuracy'] > 0.5    # gathered: all rows


def test_a_ranks_peak_memory_stays_at_one_processs(peaks):
    one = peaks['one']['peak']
    for rank in peaks['ranks']:
        assert rank['peak'] <= one + 16 * MB, (
            f"rank peak {rank['peak'] / MB:.0f} MiB against one process's {one / MB:.0f} MiB")
