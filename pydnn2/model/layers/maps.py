"""neon's layer types for feature maps and pass-through layers: pooling,
deconvolution, local response normalisation, bias and skip."""

import math

from torch import nn

from ...errors import NetBuildError
from .. import modules as M
from ..initializers import ParamInit
from .base import Cost, LayerSpec, filter_plan


class Pooling(LayerSpec):
    """Max or average pooling over each feature map; rows and columns that do not
    fill a window are dropped; average pooling divides by the real (unpadded)
    values in each window."""

    op = 'pooling'

    def __init__(self, fshape, op='max', strides=None, padding=0):
        super().__init__(fshape=fshape, op=op, strides=strides, padding=padding)

    def output_shape(self, incoming, call):
        c, h, w = self.expect(incoming, call, 3, '(C, H, W)')
        a = self.args
        self.check(call, 'op', 'one_of', options=('max', 'avg'))
        kh, kw = self.check(call, 'fshape', 'pair')
        if a['strides'] is None:
            a['strides'] = a['fshape']
        sh, sw = self.check(call, 'strides', 'pair')
        ph, pw = self.check(call, 'padding', 'pair', minimum=0)
        if ph > kh // 2 or pw > kw // 2:
            raise NetBuildError(f'{call}: padding {(ph, pw)} is more than half the '
                                f'{kh}x{kw} window; use at most {(kh // 2, kw // 2)}')
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise NetBuildError(f'{call}: a {kh}x{kw} window does not fit the input '
                                f'{(c, h, w)} with padding {(ph, pw)}')
        return c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def make_module(self, incoming):
        a = self.args
        if a['op'] == 'max':
            return nn.MaxPool2d(a['fshape'], a['strides'], a['padding'])
        return nn.AvgPool2d(a['fshape'], a['strides'], a['padding'], count_include_pad=False)

    def describe(self):
        a = self.args
        return '{}-pool {}x{}/{}x{}'.format(a['op'], *a['fshape'], *a['strides'])

    def cost(self, incoming, out_shape):
        a, (_, h, w) = self.args, incoming[0].shape
        (kh, kw), (sh, sw), (ph, pw) = a['fshape'], a['strides'], a['padding']
        loss = ((h + 2 * ph - kh) % sh, (w + 2 * pw - kw) % sw)
        elements = math.prod(out_shape)
        return Cost(elements if a['op'] == 'avg' else 0, elements * kh * kw,
                    loss if any(loss) else None)

    def activation_bytes(self, incoming, out_shape):
        return (12 if self.args['op'] == 'max' else 4) * math.prod(out_shape)


class Deconvolution(LayerSpec):
    """A transposed convolution, which enlarges maps:
    ``(H - 1) * strides - 2 * padding + filter height`` (and likewise the width)."""

    op = 'deconvolution'

    def __init__(self, num_filters, filter_shape, strides=1, padding=0, use_bias=True,
                 init=None, bias=None, weight_init='relu'):
        super().__init__(num_filters=num_filters, filter_shape=filter_shape, strides=strides,
                         padding=padding, use_bias=use_bias, init=init, bias=bias,
                         weight_init=weight_init)

    def output_shape(self, incoming, call):
        c, h, w = self.expect(incoming, call, 3, '(C, H, W)')
        a = self.args
        self.check(call, 'num_filters', 'integer', minimum=1)
        kh, kw = self.check(call, 'filter_shape', 'pair')
        sh, sw = self.check(call, 'strides', 'pair')
        ph, pw = self.check(call, 'padding', 'pair', minimum=0)
        a['use_bias'] = bool(a['use_bias'])
        self.check_bias_given(call)
        self.check_init(call, 'init', 'bias')
        self.check_activation(call, 'weight_init')
        out = (a['num_filters'], (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        if out[1] < 1 or out[2] < 1:
            raise NetBuildError(f'{call}: padding {(ph, pw)} leaves no output of input '
                                f'{(c, h, w)} ({out[1]}x{out[2]} maps); use less padding')
        return out

    def make_module(self, incoming):
        a = self.args
        return M.Deconvolution(incoming[0].shape[0], a['num_filters'], a['filter_shape'],
                               a['strides'], a['padding'], bias=a['use_bias'])

    def init_plan(self, incoming):
        return filter_plan('', self.args, incoming[0].shape[0])

    def describe(self):
        a = self.args
        return 'deconv {}x{} x{} /{}x{}'.format(*a['filter_shape'], a['num_filters'],
                                                *a['strides'])

    def cost(self, incoming, out_shape):
        a = self.args
        mults = math.prod(incoming[0].shape) * a['num_filters'] * math.prod(a['filter_shape'])
        return Cost(mults, mults)


class LRN(LayerSpec):
    """Local response normalisation across channels (Krizhevsky et al. 2012):
    each value divided by ``(k + alpha / depth * s) ** beta``, ``s`` the sum of
    squares over ``depth`` neighbouring channels."""

    op = 'lrn'

    def __init__(self, depth=5, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__(depth=depth, alpha=alpha, beta=beta, k=k)

    def output_shape(self, incoming, call):
        shape = self.expect(incoming, call, 3, '(C, H, W)')
        self.check(call, 'depth', 'integer', minimum=1)
        for name in ('alpha', 'beta', 'k'):
            self.check(call, name, 'number', above=0)
        return shape

    def make_module(self, incoming):
        a = self.args
        return nn.LocalResponseNorm(a['depth'], a['alpha'], a['beta'], a['k'])

    def describe(self):
        return f"lrn {self.args['depth']}"

    def cost(self, incoming, out_shape):
        elements, depth = math.prod(out_shape), self.args['depth']
        return Cost(elements * (depth + 2), elements * depth)

    def activation_bytes(self, incoming, out_shape):
        return 8 * math.prod(out_shape)        # the output and the normaliser


class Bias(LayerSpec):
    """A learned bias: one per channel of maps, one per feature of vectors and
    sequences."""

    op = 'bias'

    def __init__(self, init=None):
        super().__init__(init=init)

    def output_shape(self, incoming, call):
        self.check_init(call, 'init')
        return incoming[0].shape

    def make_module(self, incoming):
        shape = incoming[0].shape
        return M.Bias(shape[0] if len(shape) == 3 else shape[-1], len(shape) == 3)

    def init_plan(self, incoming):
        return [ParamInit('bias', self.args['init'], 1, 1, role='bias')]

    def describe(self):
        return 'bias'

    def cost(self, incoming, out_shape):
        return Cost(0, math.prod(out_shape))


class Skip(LayerSpec):
    """Passes its input through unchanged, values or tokens (neon's SkipNode)."""

    op = 'skip'
    accepts = 'any'

    def __init__(self):
        super().__init__()

    def output_shape(self, incoming, call):
        return incoming[0].shape

    def out_dtype(self, incoming):
        return incoming[0].dtype

    def make_module(self, incoming):
        return nn.Identity()

    def describe(self):
        return 'skip'

    def cost(self, incoming, out_shape):
        return Cost(0, 0)

    def activation_bytes(self, incoming, out_shape):
        return 0                               # the same tensor as its input
