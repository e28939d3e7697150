"""Builder methods for feature maps and plain pass-through layers (neon's layer set):
pooling, deconvolution, local response normalisation, bias and skip."""

import numbers

from torch import nn

from . import layers as L
from .errors import NetBuildError
from .recording import BuilderBase, _pair, _plain, _positive_int, recorded


def _positive_real(call, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise NetBuildError(f'{call}: {name} must be a number > 0; received {value!r}')
    return float(value)


class MapLayers(BuilderBase):
    """``add_pooling``, ``add_deconvolution``, ``add_lrn``, ``add_bias``, ``add_skip``."""

    @recorded
    def add_pooling(self, fshape, op='max', strides=None, padding=0):
        """Add max or average pooling over each feature map.

        Output height is ``(H + 2 * padding - fshape) // strides + 1`` (and
        likewise the width); rows and columns that do not fill a window are
        dropped. Average pooling divides by the number of real (unpadded)
        values in each window.

        Parameters
        ----------
        fshape : int or tuple
            (height, width) of the window.
        op : str
            'max' or 'avg'.
        strides : int or tuple, optional
            Distance between windows; defaults to ``fshape`` (no overlap).
        padding : int or tuple
            Rows/columns added on each side; at most half the window.

        >>> net.add_pooling(2, op='avg')                    # doctest: +SKIP
        """
        call = self._net._call_name
        c, h, w = self._in_shape(3, '(C, H, W)')
        if op not in ('max', 'avg'):
            raise NetBuildError(f"{call}: op must be 'max' or 'avg'; received {op!r}")
        kh, kw = _pair(call, 'fshape', fshape)
        sh, sw = _pair(call, 'strides', fshape if strides is None else strides)
        ph, pw = _pair(call, 'padding', padding, minimum=0)
        if ph > kh // 2 or pw > kw // 2:
            raise NetBuildError(f'{call}: padding {(ph, pw)} is more than half the '
                                f'{kh}x{kw} window; use at most {(kh // 2, kw // 2)}')
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise NetBuildError(f'{call}: a {kh}x{kw} window does not fit the input '
                                f'{(c, h, w)} with padding {(ph, pw)}')
        out = (c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
        if op == 'max':
            module = nn.MaxPool2d((kh, kw), (sh, sw), (ph, pw))
        else:
            module = nn.AvgPool2d((kh, kw), (sh, sw), (ph, pw), count_include_pad=False)
        args = dict(fshape=(kh, kw), op=op, strides=(sh, sw), padding=(ph, pw))
        self._net._append(self, 'pooling', args, module, out)

    @recorded
    def add_deconvolution(self, num_filters, filter_shape, strides=1, padding=0,
                          use_bias=True, init=None, bias=None):
        """Add a transposed convolution ("deconvolution"), which enlarges maps.

        Output height is ``(H - 1) * strides - 2 * padding + filter height``
        (and likewise the width). Add a nonlinearity after it yourself.

        Parameters
        ----------
        num_filters : int
            Number of output maps.
        filter_shape : int or tuple
            (height, width) of the filters.
        strides, padding : int or tuple
            As for the convolution this one transposes.
        use_bias : bool
            False when batch normalisation follows.
        init, bias : pydnn2.initializers.Initializer, optional
            Initialise the filters (default: by the net's activation, with
            ``fan_in = C * height * width``) and the biases (default: zeros).
        """
        call = self._net._call_name
        c, h, w = self._in_shape(3, '(C, H, W)')
        num_filters = _positive_int(call, 'num_filters', num_filters)
        kh, kw = _pair(call, 'filter_shape', filter_shape)
        sh, sw = _pair(call, 'strides', strides)
        ph, pw = _pair(call, 'padding', padding, minimum=0)
        out = (num_filters, (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        if out[1] < 1 or out[2] < 1:
            raise NetBuildError(f'{call}: padding {(ph, pw)} leaves no output of input '
                                f'{(c, h, w)} ({out[1]}x{out[2]} maps); use less padding')
        init, bias = self._initializer(init, 'init'), self._bias_init(bias, use_bias)
        module = L.Deconvolution(c, num_filters, (kh, kw), (sh, sw), (ph, pw),
                                 bias=bool(use_bias))
        fans = c * kh * kw, num_filters * kh * kw
        self._initialise(module, self._weight_and_bias('', init, bias, fans,
                                                       self._net.activation_name, use_bias))
        args = dict(num_filters=num_filters, filter_shape=(kh, kw), strides=(sh, sw),
                    padding=(ph, pw), use_bias=bool(use_bias), init=_plain(init),
                    bias=_plain(bias))
        self._net._append(self, 'deconvolution', args, module, out)

    @recorded
    def add_lrn(self, depth=5, alpha=1e-4, beta=0.75, k=1.0):
        """Add local response normalisation across channels (Krizhevsky et al. 2012).

        Each value is divided by ``(k + alpha / depth * s) ** beta``, where
        ``s`` sums the squares of the same position in the ``depth``
        neighbouring channels (``torch.nn.LocalResponseNorm``).
        """
        call = self._net._call_name
        shape = self._in_shape(3, '(C, H, W)')
        depth = _positive_int(call, 'depth', depth)
        alpha, beta, k = (_positive_real(call, n, v)
                          for n, v in (('alpha', alpha), ('beta', beta), ('k', k)))
        module = nn.LocalResponseNorm(depth, alpha, beta, k)
        self._net._append(self, 'lrn', dict(depth=depth, alpha=alpha, beta=beta, k=k),
                          module, shape)

    @recorded
    def add_bias(self, init=None):
        """Add a learned bias: one per channel of maps, one per feature of
        vectors and sequences. ``init`` defaults to zeros."""
        shape = self._in_shape()
        init = self._initializer(init, 'init')
        maps = len(shape) == 3
        num = shape[0] if maps else shape[-1]
        module = self._initialise(L.Bias(num, maps), [L.ParamInit('bias', init, 1, 1,
                                                                  role='bias')])
        self._net._append(self, 'bias', dict(init=_plain(init)), module, shape)

    @recorded
    def add_skip(self):
        """Add a layer that passes its input through unchanged (neon's SkipNode)."""
        tip = self._tip()
        self._net._append(self, 'skip', {}, nn.Identity(), tip.out_shape, dtype=tip.dtype)
