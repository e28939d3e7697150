"""The planner: net_size's epoch-time estimate against the measured epoch time.

For the CNN and the MLP of :mod:`common`, asks
``net.net_size(verbose=False).seconds_per_epoch`` (a calibration of a few
timed training steps on this machine), then trains the net and takes the
median of the epoch times that ``net.train`` records (``history['seconds']``:
training, validation, and the test pass and saving when the net improves;
the first epoch is left out as warm-up). Prints the relative error
``estimate / measured - 1`` (the target is within +-30%).

Run: ``.venv/bin/python benchmarks/bench_estimate.py [--quick]``
"""

import sys
import time

import common
from common import median, nn

WORKLOADS = {'CNN': (common.make_cnn, 12000, 4), 'MLP': (common.make_mlp, 16000, 6)}
QUICK = {'CNN': (1000, 2), 'MLP': (2000, 2)}


def measure(name, make, rows, epochs):
    """The estimate, then the measured epochs, of one workload; returns a result dict."""
    net, _ = make(rows)
    started = time.perf_counter()
    report = net.net_size(verbose=False)
    calibration = time.perf_counter() - started
    history = net.train(nn.StochasticGradientDescent(common.LEARNING_RATE), epochs=epochs,
                        verbose=False, progress=False)
    measured = median(history['seconds'][1:])
    error = report.seconds_per_epoch / measured - 1
    print(f'{name} epoch-time estimate: {report.seconds_per_epoch:.2f} s estimated, '
          f'{measured:.2f} s measured (median of epochs 2-{epochs}), error {100 * error:+.0f}%'
          f'  (calibration took {calibration:.1f} s)', flush=True)
    return dict(bench='estimate', workload=f'{name} epoch time', estimate=report.seconds_per_epoch,
                measured=measured, error=error, unit='s', epochs=history['seconds'],
                calibration_seconds=calibration)


def main(argv=None):
    args = common.parse_args(__doc__.splitlines()[0], argv)
    common.header("net_size's epoch-time estimate vs the measured epoch")
    results = []
    for name, (make, rows, epochs) in WORKLOADS.items():
        if args.quick:
            rows, epochs = QUICK[name]
        results.append(measure(name, make, rows, epochs))
    common.write_json(args.json, results)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
