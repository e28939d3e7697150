"""A streamed image folder trains with a peak memory independent of the folder's size:
20,000 generated images against 5,000 of them, each run in a child process
(stream_memory_child.py), peak resident memory within 100 MB."""

import json
import os
import subprocess
import sys

import pytest

from pydnn2.data import write_plankton_images

CHILD = os.path.join(os.path.dirname(__file__), 'stream_memory_child.py')
PER_CLASS = 166          # 121 classes: 20,086 images
SMALL_PER_CLASS = 42     # 5,082 of them


def run_child(train_dir, output_dir, workers=2):
    out = subprocess.run([sys.executable, CHILD, train_dir, '500', str(workers), output_dir],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def subset(train_dir, target, per_class):
    """The first ``per_class`` files of each class of ``train_dir``, linked under ``target``."""
    for label in sorted(os.listdir(train_dir)):
        os.makedirs(os.path.join(target, label))
        for name in sorted(os.listdir(os.path.join(train_dir, label)))[:per_class]:
            os.link(os.path.join(train_dir, label, name), os.path.join(target, label, name))
    return str(target)


@pytest.mark.slow
def test_peak_memory_of_a_streamed_epoch_does_not_grow_with_the_folder(tmp_path):
    large, _ = write_plankton_images(str(tmp_path / 'large'), per_class=PER_CLASS,
                                     num_unlabeled=0, progress=False)
    small = subset(large, tmp_path / 'small', SMALL_PER_CLASS)
    runs = {name: run_child(folder, str(tmp_path / f'{name}_run'))
            for name, folder in (('small', small), ('large', large))}
    for run in runs.values():
        assert run['valid_rows'] == 448 and run['train_loss'] > 0   # 500 in whole batches of 64
    assert runs['large']['rows'] > 3.5 * runs['small']['rows']
    growth = runs['large']['peak_mib'] - runs['small']['peak_mib']
    workers = runs['large']['workers_peak_mib'] - runs['small']['workers_peak_mib']
    decoded = runs['large']['decoded_mib'] - runs['small']['decoded_mib']
    print(json.dumps(runs), f'growth {growth:.1f} MiB, workers {workers:.1f} MiB, '
          f'decoded sets differ by {decoded:.1f} MiB')
    # the in-memory path would hold the decoded sets: about 180 MB more for the large one
    assert decoded > 150
    assert growth < 100 and workers < 100, (growth, workers)
