"""pydnn's own layer types: channel inputs, convolution with pooling, dense
layers, nonlinearities, dropout, batch normalisation, the classifier and merges.

Each class is the one place that knows its layer type (see
:mod:`pydnn2.model.layers.base`).
"""

import math

from torch import nn

from ...errors import ConfigError, NetBuildError
from .. import modules as M
from ..activations import Nonlinearity, PReLU, SequencePReLU
from ..initializers import ParamInit
from .base import FLOAT, TOKENS, Cost, LayerSpec, filter_plan, weight_and_bias


class Input(LayerSpec):
    """A data channel entering the net (``NN(..., channel)``, ``new_pathway``)."""

    op = 'input'
    accepts = 'any'

    def __init__(self, channel, shape=None, dtype=FLOAT):
        super().__init__(channel=channel)
        self.shape, self.dtype = tuple(shape or ()), dtype

    def output_shape(self, incoming, call):
        return self.shape

    def out_dtype(self, incoming):
        return self.dtype

    def describe(self):
        return f"channel {self.args['channel']!r}"

    def cost(self, incoming, out_shape):
        return Cost(0, 0)

    def activation_bytes(self, incoming, out_shape):
        return (8 if self.dtype == TOKENS else 4) * math.prod(out_shape)


class ConvPool(LayerSpec):
    """A 'valid' convolution with stride 1, then max pooling that drops the rows
    and columns that do not fill a pool (pydnn's conv-pool)."""

    op = 'conv_pool'
    param_names = {'conv.weight': 'W', 'conv.bias': 'b'}

    def __init__(self, num_filters, filter_shape, pool_shape, pool_stride=None, use_bias=True,
                 init=None, bias=None, weight_init='relu'):
        super().__init__(num_filters=num_filters, filter_shape=filter_shape,
                         pool_shape=pool_shape, pool_stride=pool_stride, use_bias=use_bias,
                         init=init, bias=bias, weight_init=weight_init)

    def output_shape(self, incoming, call):
        c, h, w = self.expect(incoming, call, 3, '(C, H, W)')
        a = self.args
        self.check(call, 'num_filters', 'integer', minimum=1)
        fh, fw = self.check(call, 'filter_shape', 'pair')
        ph, pw = self.check(call, 'pool_shape', 'pair')
        if a['pool_stride'] is None:
            a['pool_stride'] = a['pool_shape']
        sh, sw = self.check(call, 'pool_stride', 'pair')
        a['use_bias'] = bool(a['use_bias'])
        self.check_bias_given(call)
        self.check_init(call, 'init', 'bias')
        self.check_activation(call, 'weight_init')
        if fh > h or fw > w:
            raise NetBuildError(f'{call}: a {fh}x{fw} filter does not fit the input '
                                f'{(c, h, w)}; use filters of at most {h}x{w}')
        ch, cw = h - fh + 1, w - fw + 1
        if ph > ch or pw > cw:
            raise NetBuildError(f'{call}: a {ph}x{pw} pool does not fit the {ch}x{cw} maps '
                                f'the {fh}x{fw} filter leaves of input {(c, h, w)}')
        return a['num_filters'], (ch - ph) // sh + 1, (cw - pw) // sw + 1

    def make_module(self, incoming):
        a = self.args
        return M.ConvPool(incoming[0].shape[0], a['num_filters'], a['filter_shape'],
                          a['pool_shape'], a['pool_stride'], a['use_bias'])

    def init_plan(self, incoming):
        return filter_plan('conv.', self.args, incoming[0].shape[0],
                           math.prod(self.args['pool_shape']))

    def describe(self):
        a = self.args
        pool = '' if a['pool_shape'] == (1, 1) else \
            ', max-pool {}x{}/{}x{}'.format(*a['pool_shape'], *a['pool_stride'])
        return 'conv {}x{} x{}{}'.format(*a['filter_shape'], a['num_filters'], pool)

    def _maps(self, incoming):
        (c, h, w), (fh, fw) = incoming[0].shape, self.args['filter_shape']
        return c, h - fh + 1, w - fw + 1

    def cost(self, incoming, out_shape):
        a = self.args
        c, ch, cw = self._maps(incoming)
        mults = a['num_filters'] * c * math.prod(a['filter_shape']) * ch * cw
        (ph, pw), (sh, sw) = a['pool_shape'], a['pool_stride']
        loss = ((ch - ph) % sh, (cw - pw) % sw)
        return Cost(mults, mults, loss if any(loss) else None)

    def activation_bytes(self, incoming, out_shape):
        _, ch, cw = self._maps(incoming)
        maps = 4 * self.args['num_filters'] * ch * cw
        pooled = (self.args['pool_shape'], self.args['pool_stride']) != ((1, 1), (1, 1))
        return maps + (12 * math.prod(out_shape) if pooled else 0)   # values + int64 indices


class Dense(LayerSpec):
    """A matrix multiply (plus bias) over the flattened input (pydnn's fully
    connected layer)."""

    op = 'fc'

    def __init__(self, num_units, use_bias=True, init=None, bias=None, weight_init='relu'):
        super().__init__(num_units=num_units, use_bias=use_bias, init=init, bias=bias,
                         weight_init=weight_init)

    def output_shape(self, incoming, call):
        self.check(call, 'num_units', 'integer', minimum=1)
        self.args['use_bias'] = bool(self.args['use_bias'])
        self.check_bias_given(call)
        self.check_init(call, 'init', 'bias')
        self.check_activation(call, 'weight_init')
        return (self.args['num_units'],)

    def make_module(self, incoming):
        return M.FullyConnected(math.prod(incoming[0].shape), self.args['num_units'],
                                bias=self.args['use_bias'])

    def init_plan(self, incoming):
        fans = math.prod(incoming[0].shape), self.args['num_units']
        return weight_and_bias('', self.args, fans, self.args['weight_init'],
                               self.args['use_bias'])

    def describe(self):
        return f"dense {self.args['num_units']}"

    def cost(self, incoming, out_shape):
        mults = math.prod(incoming[0].shape) * out_shape[0]
        return Cost(mults, mults)


class Logistic(Dense):
    """The softmax classifier over ``num_classes``: the layer that ends a net."""

    op = 'logistic'
    final = True

    def __init__(self, num_classes, init=None, bias=None):
        LayerSpec.__init__(self, num_classes=num_classes, init=init, bias=bias)

    def output_shape(self, incoming, call):
        self.check(call, 'num_classes', 'integer', minimum=2)
        self.check_init(call, 'init', 'bias')
        return (self.args['num_classes'],)

    def make_module(self, incoming):
        return M.FullyConnected(math.prod(incoming[0].shape), self.args['num_classes'])

    def init_plan(self, incoming):
        fans = math.prod(incoming[0].shape), self.args['num_classes']
        return weight_and_bias('', self.args, fans, 'linear')

    def describe(self):
        return f"logistic {self.args['num_classes']}"


class Activation(LayerSpec):
    """An elementwise nonlinearity: relu, tanh, sigmoid, or prelu (learned slopes,
    one per channel of maps or per feature of vectors and sequences)."""

    op = 'act'
    param_names = {'weight': 'slopes'}

    def __init__(self, nonlinearity):
        super().__init__(nonlinearity=nonlinearity)

    def output_shape(self, incoming, call):
        self.check_activation(call, 'nonlinearity')
        return incoming[0].shape

    def make_module(self, incoming):
        name, shape = self.args['nonlinearity'], incoming[0].shape
        if name != 'prelu':
            return Nonlinearity(name)
        if len(shape) == 2:
            return SequencePReLU(num_parameters=shape[1], init=0.25)
        return PReLU(num_parameters=shape[0], init=0.25)

    def describe(self):
        return self.args['nonlinearity']

    def cost(self, incoming, out_shape):
        return Cost(math.prod(out_shape), 0)


class Dropout(LayerSpec):
    """Zero inputs with probability ``rate`` while training (survivors scaled by
    ``1 / (1 - rate)``); pass them unchanged otherwise."""

    op = 'dropout'

    def __init__(self, rate=0.5):
        super().__init__(rate=rate)

    def output_shape(self, incoming, call):
        self.check(call, 'rate', 'number', at_least=0, below=1)
        return incoming[0].shape

    def make_module(self, incoming):
        return nn.Dropout(self.args['rate'])

    def describe(self):
        return f"dropout {self.args['rate']}"

    def cost(self, incoming, out_shape):
        return Cost(0, 0)

    def activation_bytes(self, incoming, out_shape):
        return 8 * math.prod(out_shape)        # the output and the float mask


class BatchNorm(LayerSpec):
    """Batch normalisation: per channel for maps, per feature for vectors and for
    sequences ``(T, F)`` (statistics over batch and time)."""

    op = 'bn'
    param_names = {'weight': 'gamma', 'bias': 'beta'}

    def __init__(self, epsilon=1e-6):
        super().__init__(epsilon=epsilon)

    def output_shape(self, incoming, call):
        self.check(call, 'epsilon', 'number', above=0)
        shape = incoming[0].shape
        if len(shape) not in (1, 2, 3):
            raise NetBuildError(f'{call} needs a (C, H, W), (T, F) or (N,) input; got {shape} '
                                f'from {incoming[0].source}')
        return shape

    def make_module(self, incoming):
        shape, eps = incoming[0].shape, self.args['epsilon']
        # running averages move 0.35 towards each batch, as pydnn's did
        if len(shape) == 3:
            return nn.BatchNorm2d(shape[0], eps=eps, momentum=0.35)
        if len(shape) == 2:
            return M.SequenceBatchNorm(shape[1], eps=eps, momentum=0.35)
        return nn.BatchNorm1d(shape[0], eps=eps, momentum=0.35)

    def init_plan(self, incoming):
        features = incoming[0].shape[0] if len(incoming[0].shape) != 2 else incoming[0].shape[1]
        return [ParamInit('weight', None, features, features, 'bn_gamma', role='scale'),
                ParamInit('bias', None, features, features, role='bias')]

    def describe(self):
        return 'batch norm'

    def check_batch_size(self, incoming, batch_size, call):
        """Refuse a batch giving a channel one value: in training, batch norm divides
        by its variance over the batch (and the positions of a map or sequence)."""
        shape = incoming[0].shape        # (C, H, W): over H * W positions; (T, F): over T
        positions = {3: math.prod(shape[1:]), 2: shape[0]}.get(len(shape), 1)
        if batch_size * positions < 2:
            raise ConfigError(
                f'batch_size {batch_size} is too small for the batch normalization of {call}: '
                'in training it normalises each channel by its mean and variance over the '
                f'batch, and a batch of {batch_size} row(s) of shape {shape} gives each channel '
                'one value, which has no variance. Use a batch_size of 2 or more, or leave the '
                'batch normalization out (e.g. add_hidden(..., batch_normalize=False))')

    def cost(self, incoming, out_shape):
        elements = math.prod(out_shape)
        return Cost(elements, elements)


class Merge(LayerSpec):
    """Concatenate pathways: feature maps of equal height and width along their
    channels, anything else flattened."""

    op = 'merge'
    accepts = 'any'

    def __init__(self, mode=None):
        super().__init__(mode=mode)

    def output_shape(self, incoming, call):
        for item in incoming:
            if item.dtype == TOKENS:
                raise NetBuildError(f'{call}: {item.source} holds integer tokens {item.shape}; '
                                    'embed them with add_lookup_table before merging')
        shapes = [item.shape for item in incoming]
        if all(len(s) == 3 for s in shapes) and len({s[1:] for s in shapes}) == 1:
            self.args['mode'] = 'channels'
            return (sum(s[0] for s in shapes),) + shapes[0][1:]
        self.args['mode'] = 'flat'
        return (sum(math.prod(s) for s in shapes),)

    def make_module(self, incoming):
        return M.Merge(self.args['mode'])

    def describe(self):
        return f"merge ({self.args['mode']})"

    def cost(self, incoming, out_shape):
        return Cost(0, 0)
