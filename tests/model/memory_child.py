"""Child process of test_memory.py: the peak memory of real training steps.

Usage: python memory_child.py KIND BATCH RULE

Builds a net (KIND: cnn, bn or mlp) on 28x28 inputs, warms the libraries up
with a forward and backward pass of two rows (leaving no gradient and no
optimizer state), resets the kernel's peak-RSS counter, runs three training
steps of BATCH rows through pydnn2's own train_step with RULE (adam,
momentum, sgd, adadelta), and prints JSON: the measured growth of the peak
resident memory and the memory model's figure for everything but the
weights (which were resident before).
"""

import json
import sys

import numpy as np
import torch

from pydnn2 import neuralnet as nn, preprocess
from pydnn2.model.memory import training_memory
from pydnn2.train.config import TrainConfig
from pydnn2.train.trainer import Trainer

RULES = {'adam': lambda: nn.Adam(1e-3), 'momentum': lambda: nn.Momentum(0.9, 0.9, 0.01),
         'sgd': lambda: nn.StochasticGradientDescent(0.01),
         'adadelta': lambda: nn.AdaDelta(0.95, 1e-6, 1.0)}


def status_bytes(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024


def build(kind, batch):
    rng = np.random.RandomState(0)
    x, y = rng.rand(4 * batch, 1, 28, 28).astype(np.float32), np.arange(4 * batch) % 10
    sets = preprocess.split_training_data((x, y), batch, 50, 25, 25)
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, batch, 0, verbose=False,
                device='cpu')
    if kind == 'cnn':
        net.add_conv_pool(32, (5, 5), (2, 2))
        net.add_nonlinearity(nn.relu)
        net.add_conv_pool(64, (5, 5), (2, 2))
        net.add_nonlinearity(nn.relu)
        net.add_fully_connected(128)
        net.add_dropout()
    elif kind == 'bn':
        net.add_convolution(16, (3, 3), (2, 2))
        net.add_dropout(0.2)
        net.add_hidden(256)
    else:
        net.add_hidden(512)
        net.add_hidden(512)
    net.add_logistic()
    return net


def main(kind, batch, rule_name):
    torch.set_num_threads(1)
    net, rule = build(kind, batch), RULES[rule_name]()
    trainer = Trainer(net, rule, TrainConfig(verbose=False))
    x, y = net.preprocessor.get_train()
    x, y = {k: v[:batch] for k, v in x.items()}, y[:batch]
    net.module.train()
    small = {k: v[:2] for k, v in x.items()}
    torch.nn.functional.cross_entropy(net.module(small), y[:2]).backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    before = status_bytes('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')                                   # the peak starts again from here
    for _ in range(3):
        trainer.train_step(x, y)
    measured = status_bytes('VmHWM') - before
    model = training_memory(net.graph, batch, rule.optimizer_slots, rule.step_temporaries)
    print(json.dumps({'measured': measured, 'model': model.total - model.weights}))


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
