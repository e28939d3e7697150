"""Throughput of the batched training-set augmentation, and its share of an epoch.

1. **Augmentation throughput**, images per second at 64x64: pydnn2's batched
   transform (:func:`pydnn2.preprocess.imageops.transform_images`: a random rotation and
   left-right flip per image, then standardisation, in ``grid_sample`` batches on
   the device) against the per-image loop pydnn ran every epoch, here with Pillow
   (``Image.rotate`` with a white fill, ``np.fliplr``, standardise, then copy the
   batch to the device). With SciPy installed, pydnn's own
   ``scipy.ndimage.rotate`` loop is timed too. On a CPU the batched transform
   is timed with one thread and with torch's default: on a busy machine the
   OpenMP threads wait on each other and one thread is faster.
2. **Epoch time**: one training epoch of a small conv net with
   :class:`~pydnn2.preprocess.Rotator360` augmenting every epoch, against the same
   net trained on tensors augmented once beforehand
   (:class:`~pydnn2.preprocess.ArrayPreprocessor`), and the augmentation alone
   (``pre.get_train()``).

Run::

    python benchmarks/augment_throughput.py [--images 4096] [--device cuda]
"""

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydnn2 import neuralnet as nn
from pydnn2 import preprocess
from pydnn2.preprocess import Rotator360
from pydnn2.preprocess.imageops import affine_matrices, transform_images

SIZE = (64, 64)


def sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def timed(run, device, repeats):
    """Median seconds of ``repeats`` calls of ``run`` after one warm-up call."""
    run()
    sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def random_digits(n, seed=0):
    """``n`` scikit-learn digits drawn dark on white at random sizes (20..90 pixels)."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.RandomState(seed)
    images, indices = [], rng.randint(0, len(digits.images), size=n)
    for index in indices:
        grey = (255 - digits.images[index] * 255 / 16).astype(np.uint8)
        h, w = rng.randint(20, 90, size=2)
        images.append(np.asarray(Image.fromarray(grey).resize((w, h), Image.Resampling.BILINEAR)))
    return images, digits.target[indices]


def pillow_loop(images, angles, flips, mean, std, device):
    """pydnn's per-epoch loop, with Pillow: rotate, flip, standardise each image."""
    out = np.empty((len(images), 1) + SIZE, np.float32)
    for i, (image, angle, flip) in enumerate(zip(images, angles, flips)):
        turned = np.asarray(Image.fromarray(image).rotate(angle, Image.Resampling.BILINEAR,
                                                          fillcolor=255))
        if flip:
            turned = np.fliplr(turned)
        out[i, 0] = (turned - mean) / std
    return torch.from_numpy(out).to(device)


def scipy_loop(images, angles, flips, mean, std, device):
    """pydnn's loop as it was: ``scipy.ndimage.rotate`` on each image."""
    from scipy import ndimage
    out = np.empty((len(images), 1) + SIZE, np.float32)
    for i, (image, angle, flip) in enumerate(zip(images, angles, flips)):
        turned = ndimage.rotate(image, angle, reshape=False, mode='constant', cval=255)
        out[i, 0] = ((np.fliplr(turned) if flip else turned) - mean) / std
    return torch.from_numpy(out).to(device)


def throughput(n, device, repeats):
    """Images per second of the batched transform and of the per-image loops."""
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, SIZE, dtype=np.uint8) for _ in range(n)]
    angles, flips = rng.uniform(0, 360, n), rng.rand(n) < 0.5
    mean, std = np.full(SIZE, 200, np.float32), 60.0
    cached = torch.from_numpy(np.stack(images)[:, None]).to(device)  # (N, H, W) -> (N, 1, H, W)
    mean_t = torch.from_numpy(mean[None]).to(device)

    def batched():
        theta = affine_matrices(angles, SIZE, flips)
        transform_images(cached, theta, 255, mean_t, std)

    rates = {}
    threads = torch.get_num_threads()
    for count in sorted({1, threads}) if torch.device(device).type == 'cpu' else [threads]:
        torch.set_num_threads(count)  # on a busy CPU, one OpenMP thread can beat several
        rates[f'batched torch, {count} thread{"s" if count > 1 else ""}'] = \
            n / timed(batched, device, repeats)
    torch.set_num_threads(threads)
    rates['per-image Pillow'] = n / timed(
        lambda: pillow_loop(images, angles, flips, mean, std, device), device, repeats)
    if importlib.util.find_spec('scipy') is not None:
        rates['per-image scipy'] = n / timed(
            lambda: scipy_loop(images, angles, flips, mean, std, device), device, repeats)
    return rates


def small_net(pre, device, output_dir):
    net = nn.NN(pre, 'images', 10, 64, np.random.RandomState(0), verbose=False,
                output_dir=output_dir, device=device)
    net.add_convolution(16, (5, 5), (2, 2))
    net.add_convolution(32, (3, 3), (2, 2))
    net.merge_data_channel('shapes')
    net.add_hidden(64)
    net.add_logistic()
    return net


def epoch_times(n, device, epochs):
    """Seconds per epoch: augmenting every epoch, on pre-augmented tensors, and the
    augmentation alone."""
    images, classes = random_digits(n)
    sets = preprocess.split_training_data((images, classes), 64, 80, 10, 10)
    pre = Rotator360(sets, SIZE, preprocess.StretchResizer(), 0).to(device)
    augmented = timed(pre.get_train, device, 5)
    x, y = pre.get_train()
    frozen = [({k: v.cpu().numpy() for k, v in x.items()}, y.cpu().numpy())]
    for part in pre.get_valid(), pre.get_test():
        frozen.append(({k: v.cpu().numpy() for k, v in part[0].items()}, part[1].cpu().numpy()))
    fixed = preprocess.ArrayPreprocessor(tuple(frozen))
    seconds = {}
    with tempfile.TemporaryDirectory() as out:
        for name, p in (('augmenting every epoch', pre), ('pre-augmented tensors', fixed)):
            net = small_net(p, device, tempfile.mkdtemp(dir=out))   # a run's own folder
            net.train(nn.Adam(learning_rate=0.001), epochs=1)  # warm-up
            started = time.perf_counter()
            net.train(nn.Adam(learning_rate=0.001), epochs=epochs)
            seconds[name] = (time.perf_counter() - started) / epochs
    seconds['augmentation alone (get_train)'] = augmented
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=4096, help='images per batch timed')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--epochs', type=int, default=3, help='epochs timed per preprocessor')
    parser.add_argument('--train-images', type=int, default=3000,
                        help='images in the epoch-time comparison (0 skips it)')
    args = parser.parse_args(argv)
    name = torch.cuda.get_device_name() if args.device.startswith('cuda') else \
        f'{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads'
    print(f'== augmentation throughput, {SIZE[0]}x{SIZE[1]}, {args.images} images, '
          f'on {args.device} ({name}), torch {torch.__version__}')
    rates = throughput(args.images, args.device, args.repeats)
    for label, rate in rates.items():
        print(f'{label:>26}: {rate:12,.0f} images/s')
    best = max((label for label in rates if label.startswith('batched')), key=rates.get)
    for label, rate in rates.items():
        if not label.startswith('batched'):
            print(f'{best} / {label}: {rates[best] / rate:.1f}x')
    print(f'(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    if args.train_images:
        print(f'== epoch time, {args.train_images} images (80% trained), conv16-conv32-'
              f'shapes-fc64, batch 64')
        for label, seconds in epoch_times(args.train_images, args.device, args.epochs).items():
            print(f'{label:>32}: {seconds:8.3f} s')


if __name__ == '__main__':
    main()
