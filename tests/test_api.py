"""pydnn's documented API (reference/pydnn-neuralnet.txt) exists with its defaults."""

import inspect

import pytest

import pydnn2
from pydnn2 import neuralnet as nn

EMPTY = inspect.Parameter.empty

# name -> [(argument, default or EMPTY), ...] as pydnn documents them
CONTRACT = {
    'NN.__init__': [('preprocessor', EMPTY), ('channel', EMPTY), ('num_classes', EMPTY),
                    ('batch_size', EMPTY), ('rng', EMPTY), ('activation', nn.relu),
                    ('name', 'net'), ('output_dir', '')],
    'NN.new_pathway': [('channel', EMPTY)],
    'NN.split_pathways': [('num', None)],
    'NN.merge_pathways': [('pathways', EMPTY)],
    'NN.merge_data_channel': [('channel', EMPTY)],
    'NN.add_conv_pool': [('num_filters', EMPTY), ('filter_shape', EMPTY), ('pool_shape', EMPTY),
                         ('pool_stride', None), ('weight_init', None), ('use_bias', True)],
    'NN.add_convolution': [('num_filters', EMPTY), ('filter_shape', EMPTY),
                           ('pool_shape', EMPTY), ('pool_stride', None), ('activation', None),
                           ('batch_normalize', True)],
    'NN.add_fully_connected': [('num_units', EMPTY), ('weight_init', None), ('use_bias', True)],
    'NN.add_hidden': [('num_units', EMPTY), ('activation', None), ('batch_normalize', True)],
    'NN.add_nonlinearity': [('nonlinearity', EMPTY)],
    'NN.add_dropout': [('rate', 0.5)],
    'NN.add_batch_normalization': [('epsilon', 1e-6)],
    'NN.add_logistic': [],
    'NN.add_mlp': [('num_hidden_units', EMPTY), ('activation', None)],
    'NN.train': [('updater', EMPTY), ('epochs', 200), ('final_epochs', 0), ('l1_reg', 0),
                 ('l2_reg', 0)],
    'NN.predict': [('data', EMPTY)],
    'NN.make_confusion_matrix': [('data', EMPTY), ('classes', EMPTY), ('files', EMPTY)],
    'NN.get_confusion_matrices': [],
    'LearningRule.__init__': [('learning_rate', EMPTY)],
    'StochasticGradientDescent.__init__': [('learning_rate', EMPTY)],
    'Momentum.__init__': [('initial_momentum', EMPTY), ('max_momentum', EMPTY),
                          ('learning_rate', EMPTY)],
    'Adam.__init__': [('learning_rate', EMPTY), ('b1', 0.9), ('b2', 0.999), ('e', 1e-8),
                      ('lmbda', 1 - 1e-8)],
    'AdaDelta.__init__': [('rho', EMPTY), ('epsilon', EMPTY), ('learning_rate', EMPTY)],
    'LearningRateAdjuster.__init__': [('initial_learn_rate', EMPTY)],
    'LearningRateDecay.__init__': [('learning_rate', EMPTY), ('decay', EMPTY),
                                   ('min_learning_rate', None)],
    'LearningRateSchedule.__init__': [('schedule', EMPTY)],
    'WackyLearningRateAnnealer.__init__': [
        ('learning_rate', EMPTY), ('min_learning_rate', EMPTY), ('patience', 40),
        ('train_improvement_threshold', 0.995), ('valid_improvement_threshold', 0.99995),
        ('reset_on_decay', None)],
    'relu': [('x', EMPTY)], 'tanh': [('x', EMPTY)], 'sigmoid': [('x', EMPTY)], 'prelu': [],
    'save': [('nn', EMPTY), ('filename', None)],
    'load': [('filename', EMPTY)],
    'net_size': [('root', EMPTY), ('layers', EMPTY)],
}


def resolve(name):
    obj = nn
    for part in name.split('.'):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize('name', sorted(CONTRACT))
def test_documented_signature(name):
    params = list(inspect.signature(resolve(name)).parameters.values())
    if params and params[0].name == 'self':
        params = params[1:]
    documented = CONTRACT[name]
    got = [(p.name, p.default) for p in params[:len(documented)]]
    assert got == documented
    # anything pydnn2 adds is an optional extra
    for extra in params[len(documented):]:
        assert extra.default is not EMPTY or extra.kind in (extra.VAR_KEYWORD,
                                                            extra.VAR_POSITIONAL), extra


@pytest.mark.parametrize('name', sorted({n.split('.')[0] for n in CONTRACT}))
def test_public_names_are_reexported_and_documented(name):
    assert getattr(pydnn2, name) is getattr(nn, name)
    assert inspect.getdoc(getattr(nn, name))


def test_pathways_offer_every_builder_method():
    for name in CONTRACT:
        if name.startswith('NN.add_') or name in ('NN.split_pathways', 'NN.merge_pathways',
                                                  'NN.merge_data_channel', 'NN.new_pathway'):
            assert callable(getattr(nn.Pathway, name.split('.')[1]))


def test_modules_exist_as_pydnn_documents_them():
    import pydnn2.data
    import pydnn2.preprocess
    assert callable(pydnn2.preprocess.split_training_data)
    assert callable(pydnn2.data.load_digits)
