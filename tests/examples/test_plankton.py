"""pydnn's own test suite, tests/examples/test_plankton.py, ported to pydnn2.

The experiment configurations ``QuickTest`` ... ``QuickTest14`` are pydnn's,
as written there, with ``pydnn`` renamed ``pydnn2`` (and ``.pkl`` files
``.pt``); they drive ``examples/plankton.py``, the port of pydnn's
``plankton.py``, on a plankton-like folder that pydnn2 draws itself (121
classes of grey shapes on white). pydnn's three tests ran the experiments
and looked at nothing; here each also checks what they wrote: submission
probabilities of shape (n, 121) summing to 1, confusion matrices whose
off-diagonal sum equals the mistakes, mistakes that map back to files of
their actual class, and training histories without a NaN.
"""

import csv
import gzip
import importlib.util
import math
import os
from os.path import join

import numpy as np
import pytest

from pydnn2 import data
from pydnn2 import neuralnet as nn
from pydnn2 import preprocess as pp

# pydnn's plankton suite trains fifteen configurations: about 80 s on two cores.
pytestmark = pytest.mark.slow

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'examples',
                       'plankton.py')
_spec = importlib.util.spec_from_file_location('plankton_example', EXAMPLE)
plankton = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plankton)


class QuickTest(object):
    def __init__(p):
        p.name = 'quick_test'
        p.batch_size = 4
        # careful changing image shape... can cause theano exceptions
        # with convolution networks
        p.image_shape = (64, 64)
        p.num_images = p.batch_size * 40
        p.num_submission_images = 10
        # p.num_submission_images = None
        p.epochs = 30
        p.final_epochs = 2
        p.train_pct = 80
        p.valid_pct = 15
        p.test_pct = 5
        p.rng_seed = 13579

        p.annealer = nn.WackyLearningRateAnnealer(
            learning_rate=0.08,
            min_learning_rate=0.008,
            patience=1,
            train_improvement_threshold=0.9,
            valid_improvement_threshold=0.95,
            reset_on_decay=None)
        p.learning_rule = nn.Momentum(
            initial_momentum=0.5,
            max_momentum=0.5,
            learning_rate=p.annealer)

        p.activation = nn.relu
        p.l1_reg = 0.000
        p.l2_reg = 0.000
        p.dropout_conv = 0.3
        p.dropout_hidd = 0.5

        p.batch_normalize = False

        # p.resizer = nn.PreserveAspectRatioResizer
        p.resizer = pp.StochasticStretchResizer
        # p.resizer = pp.StretchResizer
        p.stochastic_stretch_range = (0.5, 1.5)
        p.preprocessor = pp.Rotator360

    def build_net(p, n):
        n.add_convolution(8, (5, 5), (10, 10), (4, 4), batch_normalize=p.batch_normalize)
        n.add_dropout(p.dropout_conv)
        n.merge_data_channel('shapes')
        n.add_hidden(256, batch_normalize=p.batch_normalize)
        n.add_dropout(p.dropout_hidd)
        n.add_logistic()


class QuickTest1(QuickTest):
    def __init__(p):
        QuickTest.__init__(p)
        p.resizer = pp.PreserveAspectRatioResizer
        p.name = 'quick_test_1'
        p.epochs = 1
        p.final_epochs = 0
        p.learning_rule = nn.StochasticGradientDescent(p.annealer)

    def build_net(p, n):
        """ test net without augmentation or drop out """
        n.add_convolution(4, (5, 5), (10, 10))
        n.add_mlp(32)


class QuickTest2(QuickTest1):
    def __init__(p):
        QuickTest1.__init__(p)
        p.batch_size = 4
        p.num_images = p.batch_size * 20
        # p.num_images = None
        p.preprocessor = pp.Canonicalizer
        p.resizer = pp.ThresholdBoxStretchResizer
        p.name = 'quick_test_2'
        p.epochs = 10
        p.final_epochs = 2
        p.rng_seed = 128928
        p.box_threshold = 253


class QuickTest3(QuickTest2):
    def __init__(p):
        QuickTest2.__init__(p)
        p.resizer = pp.ContiguousBoxStretchResizer
        p.name = 'quick_test_3'
        p.epochs = 10
        p.final_epochs = 2
        p.contiguous_box_threshold = 2


class QuickTest4(QuickTest3):
    def __init__(p):
        QuickTest3.__init__(p)
        p.name = 'quick_test_4'

    def build_net(p, n):
        """ test net without augmentation or drop out """
        n.add_dropout(0.5)
        n.add_convolution(4, (5, 5), (10, 10))
        n.add_mlp(32)


class QuickTest5(QuickTest):
    def __init__(p):
        QuickTest.__init__(p)
        p.name = 'quick_test_5'
        p.resizer = pp.StretchResizer
        p.num_images = None
        p.epochs = 10
        p.final_epochs = 1
        p.train_pct = 100
        p.valid_pct = 0
        p.test_pct = 0

        p.activation = nn.tanh

    def build_net(p, n):
        """ test net without augmentation or drop out """
        n.add_mlp(4)


class QuickTest6(QuickTest):
    def __init__(p):
        QuickTest.__init__(p)
        p.name = 'quick_test_6'
        p.resizer = pp.StretchResizer
        p.epochs = 10
        p.final_epochs = 1
        p.annealer = nn.LearningRateDecay(
            learning_rate=0.08,
            decay=.03)
        p.learning_rule = nn.AdaDelta(
            rho=0.95,
            epsilon=1e-6,
            learning_rate=p.annealer)

        p.activation = nn.sigmoid

    def build_net(p, n):
        """ test net without augmentation or drop out """
        n.add_mlp(4)


class QuickTest7(QuickTest6):
    def __init__(p):
        super(QuickTest7, p).__init__()
        p.name = 'quick_test_7'
        p.epochs = 1
        p.final_epochs = 1
        p.image_shape = (2, 2)
        p.annealer = nn.LearningRateDecay(
            learning_rate=0.08,
            decay=.03,
            min_learning_rate=0.000000008)
        p.learning_rule = nn.StochasticGradientDescent(p.annealer)

    def build_net(p, n):
        n.add_mlp(1)


class QuickTest8(QuickTest7):
    def __init__(p):
        super(QuickTest8, p).__init__()
        p.name = 'quick_test_8'
        p.epochs = 100
        p.final_epochs = 2
        p.image_shape = (2, 2)
        p.batch_size = 2
        p.num_images = p.batch_size * 20

        p.annealer = nn.WackyLearningRateAnnealer(
            learning_rate=0.08,
            min_learning_rate=0.000000008,
            patience=2,
            train_improvement_threshold=0.9,
            valid_improvement_threshold=0.95,
            reset_on_decay=None)
        p.learning_rule = nn.Momentum(
            initial_momentum=0.5,
            max_momentum=0.6,
            learning_rate=p.annealer)

        p.activation = nn.prelu


class QuickTest9(QuickTest):
    def __init__(p):
        super(QuickTest9, p).__init__()
        p.name = 'quick_test_9'
        p.image_shape = (32, 32)
        p.num_images = p.batch_size * 20
        p.num_submission_images = 10
        p.epochs = 2
        p.final_epochs = 0

        p.batch_normalize = True

        p.resizer = pp.StochasticStretchResizer
        # p.resizer = pp.StretchResizer
        p.stochastic_stretch_range = (0.5, 1.5)
        p.preprocessor = pp.Rotator360PlusGeometry

    def build_net(p, n):
        n.add_conv_pool(8, (5, 5), (10, 10), (4, 4), use_bias=False)
        n.merge_data_channel('geometry')
        n.add_batch_normalization()
        n.add_nonlinearity(nn.relu)
        n.add_dropout(p.dropout_conv)
        n.add_fully_connected(8, weight_init=nn.relu, use_bias=False)
        n.merge_data_channel('geometry')
        n.add_batch_normalization()
        n.add_nonlinearity(nn.relu)
        n.add_dropout(p.dropout_hidd)
        n.add_logistic()


class QuickTest10(QuickTest):
    def __init__(p):
        super(QuickTest10, p).__init__()
        p.name = 'quick_test_10'
        p.learning_rule = nn.Adam(
            b1=0.9,
            b2=0.999,
            e=1e-8,
            lmbda=1 - 1e-8,
            learning_rate=0.001)


class QuickTest11(QuickTest8):
    def __init__(p):
        super(QuickTest11, p).__init__()
        p.name = 'quick_test_11'   # pydnn kept quick_test_8's name and overwrote its files;
        #                            pydnn2 refuses to touch another run's files
        p.annealer = nn.WackyLearningRateAnnealer(
            learning_rate=0.08,
            min_learning_rate=0.000000008,
            patience=2,
            train_improvement_threshold=0.9,
            valid_improvement_threshold=0.95,
            reset_on_decay='validation')
        p.learning_rule = nn.Momentum(
            initial_momentum=0.5,
            max_momentum=0.6,
            learning_rate=p.annealer)


class QuickTest12(QuickTest7):
    def __init__(p):
        super(QuickTest7, p).__init__()
        p.name = 'quick_test_12'
        p.epochs = 8
        p.final_epochs = 2

        p.learning_rule = nn.StochasticGradientDescent(
            learning_rate=nn.LearningRateSchedule(
                schedule=((0, .4),
                          (2, .2),
                          (3, .1),
                          (7, .05))))


class QuickTest13(QuickTest):
    def __init__(p):
        super(QuickTest13, p).__init__()
        p.name = 'quick_test_13'

    def build_net(p, n):
        n.add_convolution(8, (5, 5), (5, 5), (4, 4), batch_normalize=p.batch_normalize)
        n.add_dropout(p.dropout_conv)
        pathways = n.split_pathways(3)
        for pw in pathways + [n]:
            pw.add_convolution(8, (5, 5), (10, 10), (4, 4), batch_normalize=p.batch_normalize)
            pw.merge_data_channel('shapes')
            pw.add_hidden(8, batch_normalize=p.batch_normalize)
        n.merge_pathways(pathways)
        n.add_dropout(p.dropout_hidd)
        n.add_hidden(8, batch_normalize=p.batch_normalize)
        n.add_dropout(p.dropout_hidd)
        n.add_logistic()


class QuickTest14(QuickTest):
    def __init__(p):
        super(QuickTest14, p).__init__()
        p.name = 'quick_test_14'

    def build_net(p, n):
        n.add_convolution(8, (5, 5), (5, 5), (4, 4), batch_normalize=p.batch_normalize)
        n.add_dropout(p.dropout_conv)
        pathway = n.split_pathways()
        for pw in [pathway, n]:
            pw.add_convolution(8, (5, 5), (10, 10), (4, 4), batch_normalize=p.batch_normalize)
            pw.merge_data_channel('shapes')
            pw.add_hidden(8, batch_normalize=p.batch_normalize)
        n.merge_pathways(pathway)
        n.add_dropout(p.dropout_hidd)
        n.add_hidden(8, batch_normalize=p.batch_normalize)
        n.add_dropout(p.dropout_hidd)
        n.add_logistic()


@pytest.fixture(scope='module', autouse=True)
def plankton_folders(tmp_path_factory):
    """The plankton-like folders, drawn once: 11 images of each of 121 classes
    (1,331; pydnn's continue-training test reads 1,280) and 20 unlabelled."""
    root = tmp_path_factory.mktemp('plankton')
    train_dir, test_dir = data.write_plankton_images(str(root / 'images'), per_class=11,
                                                     num_unlabeled=20, seed=1)
    plankton.configure(train_dir, test_dir, str(root / 'output'))


def read_submission(path):
    with gzip.open(path, 'rt', newline='') as f:
        rows = list(csv.reader(f))
    return rows[0], [r[0] for r in rows[1:]], np.array([[float(v) for v in r[1:]]
                                                        for r in rows[1:]])


def read_mistakes(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def check_outputs(e, net):
    """What run_experiment wrote for ``e``, and the net it returned."""
    out = lambda suffix: join(plankton.config['output'], e.name + suffix)  # noqa: E731
    wanted = len(plankton.test_set.get_files())
    n = wanted if e.num_submission_images is None else min(e.num_submission_images, wanted)
    for which in ('final', 'best'):
        header, names, probs = read_submission(out(f'_submission_{which}.csv.gz'))
        assert header == ['image'] + plankton.train_set.get_labels()
        assert names == plankton.test_set.get_files()[:n] and probs.shape == (n, 121)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    for set_name in ('train', 'valid', 'test'):
        labels, matrix = plankton.read_confusion_matrix(out(f'_conf_mtrx_{set_name}.csv'))
        mistakes = read_mistakes(out(f'_mistakes_{set_name}.csv'))
        assert labels == plankton.train_set.get_labels() and matrix.shape == (121, 121)
        assert matrix.sum() - np.trace(matrix) == len(mistakes)
        for row in mistakes:
            assert os.path.basename(os.path.dirname(row['file'])) == row['right'] != row['wrong']
            assert matrix[labels.index(row['right']), labels.index(row['wrong'])] > 0
    sizes = [len(y) for y in net.preprocessor.get_raw_y()]
    assert [plankton.read_confusion_matrix(out(f'_conf_mtrx_{s}.csv'))[1].sum()
            for s in ('train', 'valid', 'test')] == sizes
    history = nn.load(out('_best_net.pt')).net_size(calibrate=False, verbose=False)
    assert history.total_params == sum(p.numel() for p in net.module.parameters())


@pytest.fixture(autouse=True)
def histories(monkeypatch):
    """Every history NN.train returns during a test."""
    seen, train = [], nn.NN.train

    def recording(self, *args, **kwargs):
        seen.append(train(self, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(nn.NN, 'train', recording)
    return seen


def run_and_check(e, histories):
    net = plankton.run_experiment(e)
    check_outputs(e, net)
    history = histories[-1]
    assert finite(history) and history['phase'].count('final') == e.final_epochs
    assert 1 <= history['phase'].count('main') <= e.epochs
    return net


def finite(history):
    return all(math.isfinite(v) for v in history['train_loss'])


class TestGeneral:
    def test_prediction_with_saved_reloaded_net(self, histories):
        trained = run_and_check(QuickTest(), histories)
        print('testing prediction with saved/reloaded net...')
        net = nn.load(join(plankton.config['output'], 'quick_test_best_net.pt'))
        print('loading submission data')
        files, images = plankton.test_set.build(0, 10)
        print('generating probabilities')
        preds, probs_all = net.predict({'images': images})
        assert len(files) == 10 and preds.shape == (10,) and probs_all.shape == (10, 121)
        np.testing.assert_allclose(probs_all.sum(1), 1, rtol=1e-5)
        np.testing.assert_array_equal(preds, probs_all.argmax(1))
        np.testing.assert_allclose(probs_all, trained.predict({'images': images})[1], rtol=1e-5)

    def test_continue_training_with_save_reloaded_net(self, histories):
        run_and_check(QuickTest1(), histories)
        print('testing continue training with saved/reloaded net...')

        e = QuickTest1()
        data = plankton.train_set.build(32 * 40)
        data = pp.split_training_data(data, 32, 80, 10, 10)

        net = nn.load(join(plankton.config['output'], 'quick_test_1_best_net.pt'))

        net.preprocessor.set_data(data)

        history = net.train(
            updater=e.learning_rule,
            epochs=e.epochs,
            final_epochs=e.final_epochs,
            l1_reg=e.l1_reg,
            l2_reg=e.l2_reg)
        assert len(history['epoch']) == e.epochs and finite(history)
        assert len(net.preprocessor.get_raw_y()[0]) == 1024        # 80% of 1,280 in batches of 32

    @pytest.mark.parametrize('experiment', [
        'QuickTest2', 'QuickTest3', 'QuickTest4', 'QuickTest5', 'QuickTest6', 'QuickTest7',
        'QuickTest8', 'QuickTest9', 'QuickTest10', 'QuickTest11', 'QuickTest12', 'QuickTest13',
        'QuickTest14'])
    def test_various_experiment_setting_combinations(self, experiment, histories):
        run_and_check(globals()[experiment](), histories)
