"""pydnn2.export: ONNX (run by onnxruntime) and TorchScript models equal
``net.predict``'s probabilities on raw data; the inputs they take; the errors."""

import sys

import numpy as np
import pytest
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError, NetBuildError
from pydnn2.export import (ExportedNet, MissingDependencyError, Standardize, export,
                           export_inputs, input_names)

BATCHES = (1, 7, 4096)
VOCAB = 12


def dark_boxes(n, rng):
    """``n`` raw grey images of sizes 8..30: class c has a box of darkness 80 * c."""
    images, classes = [], rng.randint(0, 3, n)
    for c in classes:
        h, w = rng.randint(8, 31, size=2)
        image = np.full((h, w), 255, np.uint8)
        image[h // 4: h - h // 4, w // 3: w - w // 3] = 80 * c + rng.randint(0, 20)
        images.append(image)
    return images, classes


def image_net():
    """A conv net (batch norm, dropout) on Rotator360 images with 'shapes' merged."""
    rng = np.random.RandomState(0)
    sets = preprocess.split_training_data(dark_boxes(120, rng), 16, 60, 20, 20)
    pre = preprocess.Rotator360(sets, (12, 12), preprocess.StretchResizer(), rng)
    net = nn.NN(pre, 'images', 3, 16, 0, verbose=False, device='cpu')
    net.add_convolution(4, (3, 3), (2, 2))           # (1, 12, 12) -> (4, 5, 5)
    net.add_dropout(0.25)
    net.merge_data_channel('shapes')                 # -> (102,)
    net.add_hidden(8)
    net.add_logistic()
    return net


def lstm_net():
    """The digits read as 8 steps of 8 features by an LSTM."""
    images, classes, files = data.load_digits()
    sets = preprocess.split_training_data((images[:, 0], classes, files), 32, 70, 10, 20)
    net = nn.NN(preprocess.ArrayPreprocessor(sets, channel='rows'), 'rows', 10, 32, 0,
                verbose=False, device='cpu')
    net.add_lstm(16)                                 # (8, 8) -> (8, 16)
    net.add_recurrent_last()                         # -> (16,)
    net.add_logistic()
    return net


def token_net():
    """Two channels: int64 tokens (lookup table + LSTM) and float sequences (GRU)."""
    rng = np.random.RandomState(0)
    x = {'tokens': rng.randint(0, VOCAB, (200, 10)), 'seq': rng.randn(200, 6, 3) * 5 + 2}
    sets = preprocess.split_training_data((x, rng.randint(0, 2, 200)), 20, 60, 20, 20)
    pre = preprocess.ArrayPreprocessor(sets, token_channels=['tokens'])
    net = nn.NN(pre, 'tokens', 2, 20, 0, verbose=False, device='cpu')
    net.add_lookup_table(VOCAB, 4)                   # (10,) -> (10, 4)
    net.add_lstm(6)
    net.add_recurrent_sum()                          # -> (6,)
    seq = net.new_pathway('seq')
    seq.add_gru(5)                                   # (6, 3) -> (6, 5)
    seq.add_recurrent_mean()                         # -> (5,)
    net.merge_pathways([seq])                        # -> (11,)
    net.add_logistic()
    return net


def raw_rows(name, net, n, seed=1):
    """``n`` unseen raw rows for ``net``, as ``predict`` takes them."""
    rng = np.random.RandomState(seed)
    if name == 'image':
        return {'images': dark_boxes(n, rng)[0]}
    if name == 'lstm':
        return rng.randint(0, 17, (n, 8, 8)).astype(np.float64)
    return {'tokens': rng.randint(0, VOCAB, (n, 10)), 'seq': rng.randn(n, 6, 3) * 5 + 2}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Each net trained for 2 epochs, its module left in training mode, exported to both
    formats, with its raw test rows and ``predict``'s probabilities for them."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('export')
    out = {}
    for name, make in (('image', image_net), ('lstm', lstm_net), ('tokens', token_net)):
        net = make()
        net.output_dir = str(folder / name)      # a folder of its own: each is a run
        net.train(nn.Adam(0.01), epochs=2, verbose=False)
        net.module.train()
        raw = raw_rows(name, net, max(BATCHES))
        out[name] = {'net': net, 'raw': raw, 'folder': folder, 'name': name,
                     'inputs': export_inputs(net, raw), 'expected': net.predict(raw)[1]}
    return out


def exported(entry, format):
    """The entry's net exported to ``format`` (once), as a file name."""
    if format not in entry:
        suffix = {'onnx': '.onnx', 'torchscript': '.ts', 'exported_program': '.pt2'}[format]
        entry[format] = export(entry['net'], entry['folder'] / (entry['name'] + suffix),
                               format=format)
    return entry[format]


def load_torch(entry, format):
    """The exported file loaded as a callable module."""
    if format == 'torchscript':
        return torch.jit.load(exported(entry, format))
    return torch.export.load(exported(entry, format)).module()


def onnx_session(entry):
    """An onnxruntime session of the entry's net (exported once), on one thread."""
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    path = exported(entry, 'onnx')
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def first_rows(inputs, n):
    return {name: array[:n] for name, array in inputs.items()}


@pytest.mark.slow
@pytest.mark.parametrize('name', ['image', 'lstm', 'tokens'])
def test_onnx_runtime_equals_predict(trained, name):
    entry = trained[name]
    session = onnx_session(entry)
    for n in BATCHES:
        probabilities, = session.run(None, first_rows(entry['inputs'], n))
        assert probabilities.shape == (n, entry['net'].num_classes)
        np.testing.assert_allclose(probabilities, entry['expected'][:n], rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:`torch.jit.load` is deprecated')
@pytest.mark.parametrize('format', ['torchscript', 'exported_program'])
@pytest.mark.parametrize('name', ['image', 'lstm', 'tokens'])
def test_torch_formats_equal_predict(trained, name, format):
    entry = trained[name]
    module = load_torch(entry, format)
    for n in BATCHES:
        inputs = [torch.from_numpy(a) for a in first_rows(entry['inputs'], n).values()]
        with torch.no_grad():
            probabilities = module(*inputs).numpy()
        np.testing.assert_allclose(probabilities, entry['expected'][:n], rtol=0, atol=1e-5)


@pytest.mark.parametrize('make', [
    lambda sets, rng: preprocess.Canonicalizer(sets, (10, 10), preprocess.StretchResizer(),
                                               rng, orient=True),
    lambda sets, rng: preprocess.Rotator360PlusGeometry(
        sets, (10, 10), preprocess.PreserveAspectRatioResizer(), rng)],
    ids=['Canonicalizer-orient', 'Rotator360PlusGeometry'])
@pytest.mark.slow
def test_the_other_image_preprocessors_export_their_channels(make, tmp_path):
    rng = np.random.RandomState(0)
    pre = make(preprocess.split_training_data(dark_boxes(40, rng), 8, 60, 20, 20), rng)
    net = nn.NN(pre, 'images', 3, 8, 0, verbose=False, device='cpu')
    net.add_convolution(3, (3, 3), (2, 2))
    for channel in pre.channels[1:]:                 # 'shapes' (and 'geometry')
        net.merge_data_channel(channel)
    net.add_logistic()
    raw = {'images': dark_boxes(7, np.random.RandomState(2))[0]}
    inputs = export_inputs(net, raw)
    assert list(inputs) == list(pre.channels)
    model = torch.export.load(export(net, tmp_path / 'net.pt2', format='exported_program'))
    np.testing.assert_allclose(model.module()(*map(torch.from_numpy, inputs.values())),
                               net.predict(raw)[1], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_onnx_inputs_are_named_channels_with_a_dynamic_batch(trained):
    expected = {'image': [('images', 'tensor(uint8)', [1, 12, 12]),
                          ('shapes', 'tensor(float)', [2])],
                'tokens': [('tokens', 'tensor(int64)', [10]),
                           ('seq', 'tensor(float)', [6, 3])]}
    for name, inputs in expected.items():
        session = onnx_session(trained[name])
        assert [(i.name, i.type, i.shape[1:]) for i in session.get_inputs()] == inputs
        assert {i.shape[0] for i in session.get_inputs()} == {'batch'}
        assert [(o.name, o.shape) for o in session.get_outputs()] == \
            [('probabilities', ['batch', trained[name]['net'].num_classes])]


def test_export_inputs_are_what_the_preprocessor_makes_of_raw_data(trained):
    net, raw = trained['image']['net'], {'images': trained['image']['raw']['images'][:5]}
    inputs = export_inputs(net, raw)
    assert list(inputs) == list(input_names(net)) == ['images', 'shapes']
    assert inputs['images'].dtype == np.uint8 and inputs['images'].shape == (5, 1, 12, 12)
    np.testing.assert_array_equal(inputs['shapes'], [im.shape for im in raw['images']])
    served = net.preprocessor.preprocess(raw)                # standardised, as predict sees it
    steps = ExportedNet(net).steps
    for i, channel in enumerate(['images', 'shapes']):
        np.testing.assert_allclose(steps[i](torch.from_numpy(inputs[channel])),
                                   served[channel], rtol=0, atol=1e-6)
    tokens = export_inputs(trained['tokens']['net'], trained['tokens']['raw'])
    assert tokens['tokens'].dtype == np.int64 and tokens['seq'].dtype == np.float32


@pytest.mark.filterwarnings('ignore:`torch.jit.load` is deprecated')
def test_export_leaves_the_module_in_its_mode_and_on_its_device(trained, tmp_path):
    net = trained['image']['net']
    for training in (True, False):
        net.module.train(training)
        export(net, tmp_path / 'net.ts', format='torchscript')
        assert {m.training for m in net.module.modules()} == {training}
        assert {p.requires_grad for p in net.module.parameters()} == {True}
    assert torch.jit.load(tmp_path / 'net.ts').training is False


def test_a_loaded_net_exports_the_same_model(trained, tmp_path):
    entry = trained['image']
    loaded = nn.load(nn.save(entry['net'], tmp_path / 'image.pt'))
    export(loaded, tmp_path / 'loaded.pt2', format='exported_program')
    inputs = [torch.from_numpy(a) for a in first_rows(entry['inputs'], 7).values()]
    model = torch.export.load(tmp_path / 'loaded.pt2').module()
    np.testing.assert_allclose(model(*inputs), entry['expected'][:7], rtol=0, atol=1e-5)


def test_standardize_computes_in_the_mean_dtype_and_returns_float32():
    step = Standardize(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    out = step(torch.tensor([[3.0, 10.0]], dtype=torch.float32))
    assert out.dtype == torch.float32 and out.tolist() == [[1.0, 2.0]]
    assert step.mean.dtype == torch.float64


def test_a_net_without_an_output_layer_is_refused(tmp_path):
    net = lstm_net()
    net.undo()                                                 # remove add_logistic
    with pytest.raises(NetBuildError, match='no output layer: finish it with add_logistic'):
        export(net, tmp_path / 'net.onnx')
    assert not (tmp_path / 'net.onnx').exists()


def test_a_bad_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="export: format must be one of 'onnx', "
                                          "'torchscript', 'exported_program'; received "
                                          "'tflite'"):
        export(lstm_net(), tmp_path / 'net.tflite', format='tflite')
    assert not list(tmp_path.iterdir())


def test_opset_version_is_for_onnx_only(tmp_path):
    with pytest.raises(ConfigError, match="opset_version applies to format='onnx' only"):
        export(lstm_net(), tmp_path / 'net.ts', format='torchscript', opset_version=18)
    with pytest.raises(ConfigError, match='opset_version must be a positive integer or None; '
                                          "received '18'"):
        export(lstm_net(), tmp_path / 'net.onnx', opset_version='18')


def test_missing_onnx_packages_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxscript', None)      # import onnxscript fails
    with pytest.raises(MissingDependencyError,
                       match=r'onnxscript not installed: install them with '
                             r'pip install pydnn2\[export\]') as caught:
        export(lstm_net(), tmp_path / 'net.onnx')
    assert isinstance(caught.value, ImportError)
    assert not (tmp_path / 'net.onnx').exists()


def test_export_inputs_refuse_rows_of_the_wrong_shape(trained):
    with pytest.raises(DataError, match=r"channel 'rows' of the data to export has rows of "
                                        r"shape \(8, 7\); expected \(8, 8\)"):
        export_inputs(trained['lstm']['net'], np.zeros((3, 8, 7)))


def test_other_preprocessors_are_refused(tmp_path):
    class Plain(preprocess.Preprocessor):          # supplies no standardizer()
        def shapes(self):
            return {'x': (3,)}

        def has_data(self):
            return False

        preprocess = set_data = state_dict = from_state = None

    net = nn.NN(Plain(), 'x', 2, 1, 0, verbose=False, device='cpu')
    net.add_logistic()
    with pytest.raises(ConfigError, match=r'export needs a preprocessor that supplies its '
                                          r'standardisation .*; Plain supplies none'):
        export(net, tmp_path / 'net.pt', format='torchscript')
