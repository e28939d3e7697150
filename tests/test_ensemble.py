"""Ensemble: its probabilities are the (weighted) mean of its members'; evaluate,
confusion matrices and interpretation follow from them; the ONNX export equals predict
within 1e-5 (run by onnxruntime); members that disagree are refused by name."""

import numpy as np
import pytest

import pydnn2
from pydnn2 import Ensemble, files, preprocess
from pydnn2.errors import ConfigError, DataError
from pydnn2.evaluate import Accuracy, LogLoss, confusion_matrix


def build_other(net):
    net.add_hidden(24)
    net.add_logistic()


@pytest.fixture(scope='module')
def members(digits_cached, net_maker, tmp_path_factory):
    """Three nets trained two epochs on the digits: two architectures, two learning
    rates; the third saved to a file."""
    sets = preprocess.split_training_data(digits_cached, 32, 60, 20, 20)
    folder = tmp_path_factory.mktemp('members')
    nets = [net_maker(sets, folder, name='a'), net_maker(sets, folder, build_other, name='b'),
            net_maker(sets, folder, name='c')]
    for net, rate in zip(nets, (0.01, 0.01, 0.003)):
        net.train(pydnn2.Adam(rate), epochs=2, channels_last=False)
    files.save(nets[2], folder / 'c.pt')
    return sets, nets, folder / 'c.pt'


def test_predictions_are_the_weighted_mean_of_the_members(members):
    sets, nets, path = members
    x = sets[2][0]
    probabilities = np.stack([net.predict(x)[1] for net in nets])
    ensemble = Ensemble(nets[:2] + [path])          # a member given as its file
    classes, mean = ensemble.predict(x)
    np.testing.assert_allclose(mean, probabilities.mean(0), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(classes, probabilities.mean(0).argmax(1))
    _, weighted = Ensemble(nets, weights=[2, 1, 1]).predict(x)
    expected = 0.5 * probabilities[0] + 0.25 * probabilities[1] + 0.25 * probabilities[2]
    np.testing.assert_allclose(weighted, expected, rtol=0, atol=1e-7)
    assert not np.allclose(weighted, mean, atol=1e-3)
    np.testing.assert_array_equal(ensemble.get_outputs('test'), mean)


def test_evaluate_confusion_and_interpretation_follow_the_mean(members):
    sets, nets, _ = members
    ensemble = Ensemble(nets)
    x, y = sets[1][0], sets[1][1]
    mean = ensemble.predict(x)[1]
    accuracy, loss = ensemble.evaluate('valid', [Accuracy(), LogLoss()])
    assert accuracy == pytest.approx(np.mean(mean.argmax(1) == y), abs=1e-12)
    assert loss == pytest.approx(-np.mean(np.log(mean[np.arange(len(y)), y])), rel=1e-5)
    assert ensemble.evaluate((x, y), Accuracy()) == accuracy
    matrices = ensemble.get_confusion_matrices()
    matrix, mistakes = matrices[1]
    np.testing.assert_array_equal(matrix, confusion_matrix(y, mean.argmax(1), 10))
    assert len(mistakes) == matrix.sum() - np.trace(matrix)
    assert all(a == sets[1][1][list(sets[1][2]).index(f)] for f, a, _ in mistakes)
    found = ensemble.interpret('valid', top=5)
    np.testing.assert_array_equal(found.confusion, matrix)
    assert found.num_errors == len(mistakes) and len(found.top_losses) == 5


@pytest.mark.slow
def test_the_onnx_export_equals_predict(members, tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    sets, nets, _ = members
    ensemble = Ensemble(nets[1:], weights=[1, 3])
    path = ensemble.export(tmp_path / 'ensemble.onnx')
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    x = sets[2][0]
    (probabilities,) = session.run(None, ensemble.export_inputs(x))
    np.testing.assert_allclose(probabilities, ensemble.predict(x)[1], rtol=0, atol=1e-5)


def test_members_that_disagree_are_refused_by_name(members, net_maker, digits_cached,
                                                  tmp_path):
    sets, nets, path = members
    wider = pydnn2.NN(preprocess.ArrayPreprocessor(sets), 'images', 11, 32, 0,
                      verbose=False, device='cpu')
    wider.add_hidden(8)
    wider.add_logistic()
    with pytest.raises(ConfigError, match=r"member 1 \(net 'net'\) disagrees with member 0 "
                                          r"\(net 'a'\) on num_classes: 11"):
        Ensemble([nets[0], wider])
    flat = (digits_cached[0].reshape(-1, 64), digits_cached[1], digits_cached[2])
    flat_sets = preprocess.split_training_data(flat, 32, 60, 20, 20)
    flat_net = net_maker(flat_sets, tmp_path, build_other, name='flat')
    with pytest.raises(ConfigError, match=r"member 2 .*'flat'.* on shapes: \{'images': \(64,\)\}"):
        Ensemble([nets[0], path, flat_net])
    with pytest.raises(ConfigError, match='weights as 2 numbers >= 0'):
        Ensemble(nets[:2], weights=[1, -1])
    with pytest.raises(ConfigError, match='received an empty list'):
        Ensemble([])
    with pytest.raises(ConfigError, match='received int as member 1'):
        Ensemble([nets[0], 3])
    with pytest.raises(DataError, match='no member holds data sets'):
        Ensemble([path]).evaluate('valid', Accuracy())
