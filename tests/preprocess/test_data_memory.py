"""Data costs its own memory once (issue 17): an ArrayPreprocessor over arrays in memory
holds no copy of them, and one over a numpy.memmap reads it batch by batch, so peak
memory does not grow with the file. Each run is a child process whose peak resident
memory (VmHWM) is read at the end of one training epoch."""

import json
import os
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(__file__), 'data_memory_child.py')
MB = 2 ** 20


def child(*args):
    out = subprocess.run([sys.executable, CHILD, *map(str, args)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


@pytest.mark.slow
def test_arrays_in_memory_cost_at_most_one_and_a_half_times_their_bytes(tmp_path):
    os.chdir(tmp_path)
    small = child('train', 'memory', 2_048, 784)               # the process and net alone
    big = child('train', 'memory', 217_088, 784)               # 0.68 GB of float32
    assert big['data_bytes'] > 0.65e9
    assert big['valid_error'] < 0.5                            # it trained on that data
    assert big['peak'] <= small['peak'] + 1.5 * big['data_bytes'], (
        f"peak {big['peak'] / MB:.0f} MiB for {big['data_bytes'] / MB:.0f} MiB of data; the "
        f"process alone peaks at {small['peak'] / MB:.0f} MiB")


@pytest.mark.slow
def test_a_memmap_of_4_gb_trains_under_1_gb_and_its_quarter_within_100_mb(tmp_path):
    os.chdir(tmp_path)
    width = 16_384                                             # 64 KiB rows
    peaks = {}
    for rows in (16_384, 65_536):                              # 1 GiB and 4 GiB
        path = tmp_path / f'x{rows}.f32'
        child('write', path, rows, width)
        peaks[rows] = child('train', 'memmap', rows, width, path)
        assert peaks[rows]['valid_error'] < 0.85       # below chance (0.9): it read the rows
        os.remove(path)
    assert peaks[65_536]['data_bytes'] == 4 * 2 ** 30
    assert peaks[65_536]['peak'] < 1e9, f"peak {peaks[65_536]['peak'] / MB:.0f} MiB"
    assert abs(peaks[65_536]['peak'] - peaks[16_384]['peak']) <= 100 * MB, peaks
