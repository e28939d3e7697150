"""Standardising channels batch by batch, and the same as a module for export.

:class:`ChannelStats` holds each value channel's training mean (a row) and
standard deviation (one number) and applies them to a batch as it is made;
:meth:`ChannelStats.module` gives the same arithmetic as a ``torch.nn.Module``
(:class:`Standardizer`) for an exported net. :func:`streamed_statistics`
fits them in one pass over batches of rows (a dataset too large for memory).

>>> import numpy as np, torch
>>> stats = ChannelStats({'x': (np.array([1.0, 2.0], np.float32), 2.0)})
>>> stats.apply({'x': torch.tensor([[3.0, 2.0]])})['x'].tolist()
[[1.0, 0.0]]
"""

from __future__ import annotations

import numpy as np
import torch


class Standardize(torch.nn.Module):
    """``(x - mean) / std`` in ``mean``'s dtype, returned as float32 (one channel's
    standardisation, as a module for export).

    Parameters
    ----------
    mean : array_like
        The training mean, broadcast over the batch (a row, or one value per column).
    std : array_like or float
        The training standard deviation (one number, or one per column).
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(np.asarray(mean))
        self.register_buffer('mean', mean.clone())
        self.register_buffer('std', torch.as_tensor(np.asarray(std), dtype=mean.dtype).clone())

    def forward(self, x):
        return ((x.to(self.mean.dtype) - self.mean) / self.std).float()  # (N, ...) float32


class Standardizer(torch.nn.Module):
    """One module per channel applied to a dict of channels (identity where a channel
    has none): the standardisation a preprocessor builds into an exported net."""

    def __init__(self, steps: dict[str, torch.nn.Module]) -> None:
        super().__init__()
        self.steps = torch.nn.ModuleDict(steps)

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: self.steps[name](v) if name in self.steps else v for name, v in x.items()}


class ChannelStats:
    """Each value channel's ``(mean row, std)``, applied batch by batch.

    Parameters
    ----------
    stats : dict
        ``{channel: (mean (row shape) float32 array, std float)}``.
    tokens : sequence of str
        Channels of integer tokens, served unchanged as int64.
    """

    def __init__(self, stats, tokens=()):
        self.stats, self.tokens = stats, tuple(tokens)
        self._device = {}

    def _on(self, device):
        """The statistics as float32 tensors on ``device`` (made once per device)."""
        if device not in self._device:
            self._device[device] = {
                n: (torch.from_numpy(np.asarray(m, np.float32)).to(device),
                    torch.tensor(np.float32(s), device=device))
                for n, (m, s) in self.stats.items() if n not in self.tokens}
        return self._device[device]

    def apply(self, x, inplace=False):
        """A batch ``{channel: tensor}`` standardised as float32 (tokens as int64);
        ``inplace`` when the batch's tensors are copies of its own."""
        out = {}
        for name, v in x.items():
            if name in self.tokens:
                out[name] = v.long()                                     # (b, T) int64
                continue
            mean, std = self._on(v.device)[name]
            v = v.to(torch.float32)
            out[name] = (v.sub_(mean) if inplace else v - mean).div_(std)
        return out

    def module(self):
        """The standardisation as a :class:`Standardizer` (float32 arithmetic)."""
        return Standardizer({c: Standardize(m, np.float32(s)) for c, (m, s) in self.stats.items()
                             if c not in self.tokens})


def streamed_statistics(batches, how):
    """Fit :class:`ChannelStats` entries in one pass over ``batches`` (an iterable of
    ``{channel: tensor (b, ...)}``).

    ``how`` is ``'standard'`` (the mean row and the standard deviation of all values
    around it, as :class:`~pydnn2.preprocess.ArrayPreprocessor` standardises),
    ``'pydnn'`` (the mean row, and 255: pydnn's ``(x - mean) / 255`` for images of
    grey levels) or None (zeros and 1: values served as they are). Sums are kept in
    float64. Returns ``{channel: (mean, std)}``.
    """
    sums, squares, rows = {}, {}, 0
    for x in batches:
        for name, v in x.items():
            v = v.detach().to('cpu', torch.float64)
            sums[name] = sums.get(name, 0) + v.sum(0)
            if how == 'standard':
                squares[name] = squares.get(name, 0) + v.square().sum(0)
        rows += len(next(iter(x.values()))) if x else 0
    stats = {}
    for name, total in sums.items():
        mean = (total / max(1, rows)).numpy()
        if how is None:
            stats[name] = (np.zeros_like(mean, np.float32), 1.0)
        elif how == 'pydnn':
            stats[name] = (mean.astype(np.float32), 255.0)
        else:
            deviation = float((squares[name].numpy() - rows * mean ** 2).sum())
            std = float(np.sqrt(max(0.0, deviation) / max(1, rows * mean.size)))
            stats[name] = (mean.astype(np.float32), std if std > 0 else 1.0)
    return stats
