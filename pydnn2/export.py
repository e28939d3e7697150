"""Export a net to ONNX, TorchScript or ``torch.export``, standardisation and softmax included.

:func:`export` writes one file (``format='onnx'``, ``'torchscript'`` or
``'exported_program'``). The exported model takes what :meth:`~pydnn2.NN.predict` takes, minus the
steps that cannot live in a graph, and returns what ``predict`` returns
second: the class probabilities ``(N, num_classes)`` (float32, the
softmax of the logits). It has one input per channel the net reads, in the
order :func:`export_inputs` gives them, each with a dynamic batch axis:

- :class:`~pydnn2.preprocess.ArrayPreprocessor` channels: the raw rows
  ``(N, *row shape)`` as float32 (the graph centres them on the training
  mean and divides by the training standard deviation); token channels
  ``(N, T)`` as int64, unchanged.
- Image preprocessors (:class:`~pydnn2.preprocess.Canonicalizer`,
  :class:`~pydnn2.preprocess.Rotator360`,
  :class:`~pydnn2.preprocess.Rotator360PlusGeometry`): resizing images of
  any size cannot live in a graph, so ``'images'`` is the *resized* images
  ``(N, C, H, W)`` as uint8 (as the preprocessor resizes them for
  prediction, orientation included), ``'shapes'`` the raw images' heights
  and widths ``(N, 2)`` and ``'geometry'`` their
  :data:`~pydnn2.preprocess.imageops.GEOMETRY_FEATURES` ``(N, k)``, both
  float32; the graph centres and scales all three as the preprocessor does
  (with its training statistics).

:func:`export_inputs` turns raw data into exactly these arrays.
ONNX export needs the ``export`` extra (``pip install pydnn2[export]``:
onnx and onnxscript, with onnxruntime to run the file).

>>> import torch
>>> from pydnn2 import neuralnet as nn, preprocess, data
>>> sets = preprocess.split_training_data(data.load_digits(), 64, 80, 10, 10)
>>> net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 64, 0, verbose=False)
>>> net.add_hidden(16)
>>> net.add_logistic()
>>> path = export(net, 'digits.pt2', format='exported_program')
>>> inputs = export_inputs(net, sets[2][0])                # {'images': float32 (N, 1, 8, 8)}
>>> model = torch.export.load(path).module()
>>> probabilities = model(*map(torch.from_numpy, inputs.values()))
>>> bool(torch.allclose(probabilities, torch.from_numpy(net.predict(sets[2][0])[1]),
...                     atol=1e-5))
True
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import os
import warnings
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, cast

import numpy as np
import torch

from . import checks, files
from .errors import ConfigError, DataError, MissingDependencyError
from .preprocess.standardize import Standardize  # noqa: F401 - its public home before 0.3

if TYPE_CHECKING:                       # for the annotations only
    from .net import NN

#: The formats :func:`export` writes.
FORMATS = ('onnx', 'torchscript', 'exported_program')
#: The name of the exported model's output.
OUTPUT_NAME = 'probabilities'
#: What the ONNX export imports, and the extra that installs it.
ONNX_PACKAGES = ('onnx', 'onnxscript')
EXTRA = 'pip install pydnn2[export]'


def _steps(net: NN, channels: Iterable[str]) -> dict[str, torch.nn.Module]:
    """The standardisation of each channel, as the net's preprocessor supplies it
    (:meth:`~pydnn2.preprocess.Preprocessor.standardizer`); identity where it has none."""
    pre = net.preprocessor
    standardizer = pre.standardizer()
    if standardizer is None:
        raise ConfigError(f'export needs a preprocessor that supplies its standardisation '
                          f'(Preprocessor.standardizer()); {type(pre).__name__} supplies none')
    steps = standardizer.steps
    return {c: steps[c] if c in steps else torch.nn.Identity() for c in channels}


def input_names(net: NN) -> tuple[str, ...]:
    """The channels ``net`` reads, in the order of the exported model's inputs.

    >>> input_names(net)                                   # doctest: +SKIP
    ('images', 'shapes')
    """
    names: list[str] = []
    for node in net.graph.nodes:
        if node.op == 'input' and node.args['channel'] not in names:
            names.append(node.args['channel'])
    return tuple(names)


class ExportedNet(torch.nn.Module):
    """A net as one module: standardisation, the net, softmax.

    ``forward(*inputs)`` takes one tensor per name of :attr:`input_names`
    (as :func:`export_inputs` makes them) and returns the class
    probabilities ``(N, num_classes)``, float32. The module is a CPU copy
    of ``net.module`` in evaluation mode; the net itself is left as it was.

    Parameters
    ----------
    net : pydnn2.NN
        A complete net (ending in ``add_logistic``).

    Examples
    --------
    >>> model = ExportedNet(net)                           # doctest: +SKIP
    >>> model(*map(torch.from_numpy, export_inputs(net, x).values()))  # doctest: +SKIP
    """

    def __init__(self, net: NN) -> None:
        super().__init__()
        net.check_complete()
        self.input_names = input_names(net)
        steps = _steps(net, self.input_names)
        self.steps = torch.nn.ModuleList([steps[c] for c in self.input_names])
        self.net = copy.deepcopy(net.module).cpu()
        self.requires_grad_(False)
        self.eval()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_names):
            raise DataError(f'the exported net takes {len(self.input_names)} inputs '
                            f'{list(self.input_names)}; received {len(inputs)}')
        x = {name: step(value)
             for name, step, value in zip(self.input_names, self.steps, inputs)}
        return torch.softmax(self.net(x).float(), 1)   # (N, num_classes)

    def example_inputs(self, net: NN, rows: int = 2) -> tuple[torch.Tensor, ...]:
        """Zero-valued inputs of ``rows`` rows with the exported dtypes and shapes."""
        pre = net.preprocessor
        return tuple(torch.zeros((rows,) + tuple(pre.shape_for(c)), dtype=pre.export_dtype(c))
                     for c in self.input_names)


def export_inputs(net: NN, data: Any) -> dict[str, np.ndarray]:
    """The exported model's inputs for raw ``data``, as numpy arrays by input name.

    Parameters
    ----------
    net : pydnn2.NN
    data
        Raw input as :meth:`~pydnn2.NN.predict` takes it: an array or a dict
        of arrays by channel for an ArrayPreprocessor; a list of raw images
        (or ``{'images': list}``) for an image preprocessor, which resizes
        them here as for prediction and measures their shapes.

    Returns
    -------
    dict of ndarray
        ``{name: array}`` in the order of :func:`input_names`: float32 rows,
        int64 tokens, uint8 resized images. Pass it to onnxruntime's
        ``session.run(None, inputs)``, or its values in order to a
        TorchScript module.

    Examples
    --------
    >>> inputs = export_inputs(net, {'images': raw_images})   # doctest: +SKIP
    >>> {name: a.dtype.name for name, a in inputs.items()}    # doctest: +SKIP
    {'images': 'uint8', 'shapes': 'float32'}
    """
    pre = net.preprocessor
    _steps(net, ())                           # refuses other preprocessors
    x = pre.prepare(data, 'data to export')
    dtypes = {torch.uint8: np.uint8, torch.int64: np.int64, torch.float32: np.float32}
    return {c: np.ascontiguousarray(x[c], dtype=dtypes[pre.export_dtype(c)])
            for c in input_names(net)}


def _require(packages: Sequence[str]) -> None:
    """Import the optional ``packages`` or raise :class:`MissingDependencyError`."""
    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependencyError(f'exporting to ONNX needs the optional packages '
                                     f'{", ".join(packages)}; {", ".join(missing)} not '
                                     f'installed: install them with {EXTRA}')


def export(net: NN, path: str | os.PathLike, format: str = 'onnx', *,
           opset_version: int | None = None) -> str:
    """Write ``net`` as one model file that computes ``predict``'s probabilities.

    Parameters
    ----------
    net : pydnn2.NN
        A complete net (ending in ``add_logistic``), trained or not.
    path : str or os.PathLike
        The file to write (atomically: a crash leaves any previous file whole).
    format : {'onnx', 'torchscript', 'exported_program'}
        ``'onnx'`` (needs ``pip install pydnn2[export]``; run it with
        onnxruntime), ``'torchscript'`` (``torch.jit.load``; PyTorch
        deprecates TorchScript) or ``'exported_program'`` (``torch.export``'s
        ``.pt2`` file: ``torch.export.load(path).module()``).
    opset_version : int, optional
        The ONNX opset (default: the exporter's recommended one); ONNX only.

    Returns
    -------
    str
        ``path``.

    The model takes one tensor per channel the net reads, in the order of
    :func:`input_names` (see the module docstring; :func:`export_inputs`
    makes them from raw data), batch axis dynamic, and returns the class
    probabilities. The net and its module are left as they were: the export
    runs on a CPU copy of the module in evaluation mode.

    Examples
    --------
    >>> export(net, 'net.onnx')                            # doctest: +SKIP
    'net.onnx'
    >>> import onnxruntime                                 # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession('net.onnx')  # doctest: +SKIP
    >>> probabilities, = session.run(None, export_inputs(net, raw))  # doctest: +SKIP
    """
    checks.one_of(format, 'format', FORMATS, where='export')
    model = ExportedNet(net)
    return write_model(model, model.example_inputs(net), path, format,
                       opset_version=opset_version)


def write_model(model: torch.nn.Module, example: Sequence[torch.Tensor], path: str | os.PathLike,
                format: str = 'onnx', *, opset_version: int | None = None) -> str:
    """Write ``model``, a module like :class:`ExportedNet`, as :func:`export` writes a net.

    ``model.forward(*inputs)`` takes one tensor per name of ``model.input_names``
    (each with a batch axis, made dynamic) and returns the probabilities;
    ``example`` is a tuple of such tensors (e.g.
    :meth:`ExportedNet.example_inputs`). :class:`~pydnn2.Ensemble` writes its
    averaging module through this.

    Returns
    -------
    str
        ``path``.
    """
    checks.one_of(format, 'format', FORMATS, where='export')
    opset_version = checks.integer(opset_version, 'opset_version', 1, none=True,
                                   where='export')
    if opset_version is not None and format != 'onnx':
        raise ConfigError(f"export: opset_version applies to format='onnx' only; received "
                          f'opset_version={opset_version} with format={format!r}')
    write = _WRITERS[format](model, tuple(example), opset_version)
    return files.atomic_write(os.fspath(path), write)


def _onnx_writer(model: torch.nn.Module, example: tuple[torch.Tensor, ...],
                 opset_version: int | None) -> Callable[[IO[bytes]], Any]:
    _require(ONNX_PACKAGES)
    data = _onnx_proto(model, example, opset_version).SerializeToString()
    return lambda f: f.write(data)


def _torchscript_writer(model: torch.nn.Module, example: tuple[torch.Tensor, ...],
                        opset_version: int | None) -> Callable[[IO[bytes]], Any]:
    traced = _traced(model, example)

    def write(f: IO[bytes]) -> None:
        with _quiet():                     # torch.jit.save warns that it is deprecated
            torch.jit.save(traced, f)
    return write


def _program_writer(model: torch.nn.Module, example: tuple[torch.Tensor, ...],
                    opset_version: int | None) -> Callable[[IO[bytes]], Any]:
    program = _exported(model, example)
    return lambda f: torch.export.save(program, f)


_WRITERS = {'onnx': _onnx_writer, 'torchscript': _torchscript_writer,
            'exported_program': _program_writer}


def _batch_axes(example: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Dynamic shapes for ``forward(*inputs)``: axis 0 of every input is one 'batch'."""
    batch = torch.export.Dim('batch')
    return {'inputs': tuple({0: batch} for _ in example)}


def _exported(model: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``model`` as a ``torch.export`` program with a dynamic batch axis."""
    with _quiet():
        return torch.export.export(model, example, dynamic_shapes=_batch_axes(example),
                                   strict=False)


def _onnx_proto(model: torch.nn.Module, example: tuple[torch.Tensor, ...],
                opset_version: int | None) -> Any:
    """The ONNX model proto of ``model``, batch axis dynamic (named 'batch')."""
    with _quiet():
        program = torch.onnx.export(
            model, example, input_names=list(cast(Sequence[str], model.input_names)),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=_batch_axes(example), opset_version=opset_version, dynamo=True,
            external_data=False, verbose=False)
    assert program is not None          # dynamo=True always returns the program
    return program.model_proto


def _traced(model: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``model`` traced to TorchScript."""
    with _quiet():
        return torch.jit.trace(model, example, check_trace=False)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress lines, warnings and log records."""
    logger = logging.getLogger('torch.onnx')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)
