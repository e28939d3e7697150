"""Tests of pydnn2.metrics against scikit-learn, and of evaluation and outputs on a trained net."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from pydnn2 import evaluate
from pydnn2.evaluate import inference
from pydnn2.model.memory import inference_bytes_per_row
from pydnn2.data import load_digits
from pydnn2.errors import ConfigError, DataError
from pydnn2.train.rules import Adam
from pydnn2.evaluate.metrics import (Accuracy, LogLoss, Misclassification, PrecisionRecall,
                            TopKMisclassification, as_metrics)
from pydnn2.net import NN
from pydnn2.preprocess import ArrayPreprocessor, split_training_data

K = 5


def random_problem(seed, n=200, k=K, dtype=np.float64):
    """Random probabilities (rows sum to 1, no ties) and labels covering most classes."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=n).astype(dtype)
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, k, size=n)
    return p, y


def sklearn_values(p, y, k=K):
    """The reference value of each metric, from scikit-learn."""
    predicted = p.argmax(1)
    labels = np.arange(k)
    precision, recall, _, support = skm.precision_recall_fscore_support(
        y, predicted, labels=labels, average=None, zero_division=0)
    return {
        'misclassification': 1 - skm.accuracy_score(y, predicted),
        'accuracy': skm.accuracy_score(y, predicted),
        'top_2_misclassification': 1 - skm.top_k_accuracy_score(y, p, k=2, labels=labels),
        'top_3_misclassification': 1 - skm.top_k_accuracy_score(y, p, k=3, labels=labels),
        'log_loss': skm.log_loss(y, p, labels=labels),
        'precision_recall': {'precision': precision, 'recall': recall, 'support': support,
                             'macro_precision': precision.mean(),
                             'macro_recall': recall.mean()},
    }


def all_metrics(k=K):
    return [Misclassification(), Accuracy(), TopKMisclassification(2),
            TopKMisclassification(3), LogLoss(), PrecisionRecall(k)]


def assert_same(value, expected):
    if isinstance(expected, dict):
        assert set(value) == set(expected)
        for key in expected:
            np.testing.assert_allclose(value[key], expected[key], rtol=1e-12, atol=1e-12)
    else:
        assert isinstance(value, float)
        assert value == pytest.approx(expected, rel=1e-6, abs=1e-12)


# -- the metrics alone -----------------------------------------------------------------


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_each_metric_matches_scikit_learn(seed):
    p, y = random_problem(seed)
    expected = sklearn_values(p, y)
    for metric in all_metrics():
        assert_same(metric(p, y), expected[metric.name])
        assert_same(metric(torch.from_numpy(p), torch.from_numpy(y)), expected[metric.name])


def test_float32_probabilities_match_scikit_learn():
    p, y = random_problem(3, dtype=np.float32)
    expected = sklearn_values(p, y)
    for metric in all_metrics():
        value = metric(p, y)
        if metric.name == 'log_loss':   # sklearn sums in float32
            assert value == pytest.approx(expected['log_loss'], rel=1e-5)
        else:
            assert_same(value, expected[metric.name])


def test_precision_recall_with_classes_never_predicted_or_never_present():
    p, y = random_problem(4, n=60)
    p[:, 4] = 0.0                      # class 4 is never predicted ...
    y[y == 3] = 0                      # ... and class 3 never occurs
    expected = sklearn_values(p / p.sum(1, keepdims=True), y)['precision_recall']
    value = PrecisionRecall(K)(p, y)
    assert_same(value, expected)
    assert value['precision'][4] == 0 and value['recall'][3] == 0


def test_streaming_updates_equal_one_update_of_all_rows():
    p, y = random_problem(5, n=301)
    cuts = [0, 1, 1, 64, 200, 301]     # an empty batch and a single row included
    for metric in all_metrics():
        for a, b in zip(cuts, cuts[1:]):
            metric.update(p[a:b], y[a:b])
        assert_same(metric.result(), metric(p, y))
        assert metric.count == len(y)
        metric.reset()
        assert metric.result() is None


def test_one_shot_call_leaves_the_running_state_alone():
    p, y = random_problem(6)
    metric = Misclassification()
    metric.update(p[:50], y[:50])
    before = metric.result()
    metric(p[50:], y[50:])
    assert metric.result() == before and metric.count == 50


def test_top_k_counts_ties_in_the_rows_favour_and_covers_k_beyond_classes():
    p = np.array([[0.4, 0.3, 0.3], [0.2, 0.2, 0.6]])
    y = np.array([2, 0])
    assert TopKMisclassification(2)(p, y) == 0.0     # 0.3 ties with the 2nd place
    assert TopKMisclassification(1)(p, y) == 1.0
    assert TopKMisclassification(10)(p, y) == 0.0


def test_log_loss_clips_with_eps():
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    y = np.array([0, 0, 1])
    eps = 1e-3
    expected = -np.mean(np.log(np.clip([1.0, 0.0, 0.5], eps, 1 - eps)))
    assert LogLoss(eps)(p, y) == pytest.approx(expected)
    default = -np.mean(np.log(np.clip([1.0, 0.0, 0.5], *(lambda e: (e, 1 - e))(
        np.finfo(np.float64).eps))))
    assert LogLoss()(p, y) == pytest.approx(default)
    assert np.isfinite(LogLoss()(p.astype(np.float32), y))


@pytest.mark.parametrize('make, message', [
    (lambda: TopKMisclassification(0), 'k must be a positive integer; received 0'),
    (lambda: TopKMisclassification(2.0), 'received 2.0'),
    (lambda: TopKMisclassification(True), 'received True'),
    (lambda: PrecisionRecall(1), 'num_classes must be an integer >= 2; received 1'),
    (lambda: PrecisionRecall('3'), "received '3'"),
    (lambda: LogLoss(0), 'eps must be a number in (0, 0.5) or None; received 0'),
    (lambda: as_metrics(Accuracy), 'did you mean Accuracy(...)?'),
    (lambda: as_metrics([]), 'expected at least one metric'),
    (lambda: as_metrics([Accuracy(), Accuracy()]), "received ['accuracy'] more than once"),
])
def test_bad_metric_arguments_raise_config_error(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize('p, y, message', [
    (np.ones(3), [0, 1, 2], 'expected probabilities of shape (batch, classes)'),
    (np.full((3, 2), 0.5), [[0], [1], [0]], 'expected labels of shape (batch,)'),
    (np.full((3, 2), 0.5), [0, 1], 'expected one label per row of probabilities (3)'),
    (np.full((3, 2), 0.5), [0.0, 1.0, 0.5], 'expected integer class labels'),
    (np.full((3, 2), 0.5), [0, 1, 2], 'expected labels in 0 .. 1'),
    (np.full((3, 2), 0.5), [0, -1, 1], 'received -1'),
])
def test_bad_batches_raise_data_error(p, y, message):
    with pytest.raises(DataError) as info:
        Accuracy().update(p, y)
    assert message in str(info.value)
    with pytest.raises(DataError, match='expected probabilities with 3 columns'):
        PrecisionRecall(3).update(np.full((2, 2), 0.5), [0, 1])


# -- inference batch size ----------------------------------------------------------------


def test_rows_that_fit_fills_the_memory_share_within_bounds():
    assert inference.rows_that_fit(1000, 10, fraction=0.5, limit=10 ** 6) == 50
    assert inference.rows_that_fit(1000, 10 ** 6) == 1
    assert inference.rows_that_fit(10 ** 12, 4) == inference.MAX_EVAL_BATCH_SIZE


# -- on a trained digits net -------------------------------------------------------------


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    torch.manual_seed(0)
    sets = split_training_data(load_digits(), 32, 60, 20, 20)
    net = NN(ArrayPreprocessor(sets), 'images', 10, 32, np.random.RandomState(0),
             verbose=False, output_dir=str(tmp_path_factory.mktemp('metrics')), device='cpu')
    net.add_hidden(32)
    net.add_logistic()
    net.train(Adam(0.01), epochs=2, verbose=False)
    return net, sets


def test_inference_batch_size_ignores_the_training_batch(trained):
    net, _ = trained
    assert evaluate.inference_batch_size(net) == evaluate.EVAL_BATCH_SIZE
    assert evaluate.eval_batch_size(net) == evaluate.EVAL_BATCH_SIZE
    assert evaluate.eval_batch_size(net, 7) == 7
    with pytest.raises(ConfigError, match='batch_size must be a positive integer'):
        evaluate.eval_batch_size(net, 0)
    # float32 values of the input, dense, batch norm, relu and logistic outputs
    assert inference_bytes_per_row(net.graph) == 4 * (64 + 32 + 32 + 32 + 10)


def test_get_outputs_are_probabilities_agreeing_with_predict(trained):
    net, sets = trained
    x_test = sets[2][0]
    outputs = evaluate.get_outputs(net, x_test)
    assert outputs.shape == (len(x_test), 10) and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs.sum(1), 1, rtol=1e-5)
    classes, probabilities = net.predict(x_test)
    np.testing.assert_array_equal(outputs.argmax(1), classes)
    np.testing.assert_allclose(outputs, probabilities, rtol=1e-6)
    np.testing.assert_allclose(evaluate.get_outputs(net, 'test'), outputs, rtol=1e-6)
    np.testing.assert_allclose(evaluate.get_outputs(net, x_test, batch_size=7), outputs,
                               rtol=1e-5, atol=1e-7)
    assert evaluate.get_outputs(net, 'train').shape == (len(sets[0][1]), 10)


def test_eval_on_the_test_set_equals_scikit_learn_on_predict(trained):
    net, sets = trained
    x_test, y_test = sets[2][0], sets[2][1]
    _, probabilities = net.predict(x_test)
    expected = sklearn_values(probabilities, y_test, k=10)
    metrics = [Misclassification(), Accuracy(), TopKMisclassification(3), LogLoss(),
               PrecisionRecall(10)]
    results = evaluate.evaluate(net, 'test', metrics)
    assert isinstance(results, list) and len(results) == len(metrics)
    for metric, value in zip(metrics, results):
        reference = expected[metric.name]
        if metric.name == 'log_loss':
            assert value == pytest.approx(reference, rel=1e-5)
        else:
            assert_same(value, reference)
    assert evaluate.evaluate(net, (x_test, y_test), Accuracy()) == \
        pytest.approx(expected['accuracy'])
    # the validation error the training loop reports is Misclassification's
    valid_error = net.history['valid_error'][-1]
    assert evaluate.evaluate(net, 'valid', Misclassification()) == pytest.approx(valid_error)


def test_metric_values_on_a_preprocessed_set(trained):
    net, _ = trained
    x, y = net.preprocessor.get_valid()
    values = evaluate.metric_values(net, x, y, [Accuracy(), LogLoss()], batch_size=50)
    assert set(values) == {'accuracy', 'log_loss'}
    loss, error = evaluate.evaluate_set(net, x, y)
    assert values['accuracy'] == pytest.approx(1 - error)
    assert values['log_loss'] == pytest.approx(loss, rel=1e-4)
    empty = evaluate.metric_values(net, {k: v[:0] for k, v in x.items()}, y[:0], Accuracy())
    assert empty == {'accuracy': None}


def test_eval_refuses_bad_data_and_metrics(trained):
    net, sets = trained
    with pytest.raises(ConfigError, match="expected a set name among"):
        evaluate.evaluate(net, 'validation', Accuracy())
    with pytest.raises(ConfigError, match='expected data as'):
        evaluate.evaluate(net, sets[2][0], Accuracy())
    with pytest.raises(DataError, match='expected one class per row'):
        evaluate.evaluate(net, (sets[2][0], sets[2][1][:-1]), Accuracy())
    with pytest.raises(ConfigError, match='expected a metric'):
        evaluate.evaluate(net, 'test', 'accuracy')


def test_predict_with_a_callback_streams_batches_in_row_order(trained):
    net, sets = trained
    x_test = sets[2][0]
    classes, probabilities = net.predict(x_test)
    seen, preprocessed = [], []
    original = net.preprocessor.preprocess

    def spy(data):
        preprocessed.append(len(data))
        return original(data)

    net.preprocessor.preprocess = spy
    try:
        returned = net.predict(x_test, batch_size=50,
                               callback=lambda c, p: seen.append((c, p)))
    finally:
        del net.preprocessor.preprocess
    assert returned is None
    sizes = [len(c) for c, _ in seen]
    assert sum(sizes) == len(x_test) and max(sizes) <= 50 and len(sizes) > 1
    assert max(preprocessed) <= 50          # raw rows are preprocessed a batch at a time
    np.testing.assert_array_equal(np.concatenate([c for c, _ in seen]), classes)
    np.testing.assert_allclose(np.concatenate([p for _, p in seen]), probabilities,
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match='expected callback to be callable'):
        net.predict(x_test, callback='file.npy')


def test_train_records_eval_metrics_on_the_validation_set(tmp_path):
    from pydnn2 import data, preprocess
    from pydnn2 import neuralnet as nn
    sets = preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20)
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32, 0, verbose=False,
                output_dir=str(tmp_path))
    net.add_mlp(32)
    history = net.train(nn.Adam(0.01), epochs=2, eval_metric=[nn.Accuracy(), nn.LogLoss()])
    assert history['valid_accuracy'] == pytest.approx([1 - e for e in history['valid_error']])
    assert history['valid_log_loss'] == pytest.approx(history['valid_loss'], rel=1e-4)
