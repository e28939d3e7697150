"""The wider layer set: pooling, deconvolution, LRN, bias, skip, lookup tables,
recurrent and summary layers; sequence channels; each against a reference."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError, NetBuildError
from pydnn2.model.initializers import Constant, Gaussian, Orthogonal, Uniform
from pydnn2.preprocess import ArrayPreprocessor, split_training_data

VOCAB = 9


def make_pre(n=48, image=(3, 10, 10), steps=5, features=4, tokens=6):
    """Channels 'images' (C, H, W), 'seq' (T, F) floats, 'tokens' (T,) ints < VOCAB."""
    rng = np.random.RandomState(0)
    x = {'images': rng.rand(n, *image).astype(np.float32),
         'seq': rng.randn(n, steps, features).astype(np.float32),
         'tokens': rng.randint(0, VOCAB, (n, tokens))}
    x['tokens'][0, 0] = VOCAB - 1                  # the largest token is present
    y = np.arange(n) % 3
    return ArrayPreprocessor(split_training_data((x, y), 8, 50, 25, 25),
                             token_channels=['tokens'])


def make_net(channel='images', pre=None, **kwargs):
    kwargs.setdefault('verbose', False)
    return nn.NN(pre or make_pre(), channel, 3, 8, np.random.RandomState(1), **kwargs)


def example_inputs(net, batch=4):
    """Random rows for every channel the net reads (tokens for token channels)."""
    out = {}
    for node in net.nodes:
        if node.op == 'input':
            channel, shape = node.args['channel'], node.out_shape
            if node.dtype == 'int64':
                out[channel] = torch.randint(0, VOCAB, (batch, *shape))
            else:
                out[channel] = torch.randn(batch, *shape)
    return out


def check_forward_shapes(net, batch=4):
    """Run the module; every layer's output must have its recorded shape (and dtype)."""
    seen = {}
    hooks = [net.module.layers[n.key].register_forward_hook(
        lambda m, i, o, key=n.key: seen.__setitem__(key, (tuple(o.shape[1:]), o.dtype)))
        for n in net.nodes if n.key in net.module.layers]
    net.module.eval()
    out = net.module(example_inputs(net, batch))
    for h in hooks:
        h.remove()
    for node in net.nodes:
        if node.key in seen:
            dtype = torch.int64 if node.dtype == 'int64' else torch.float32
            assert seen[node.key] == (node.out_shape, dtype), node
    return out


def last_module(net):
    return net.module.layers[net.nodes[-1].key]


def numpy_pool(x, k, s, p, op):
    """Reference pooling of (C, H, W) with padding excluded from averages."""
    c, h, w = x.shape
    padded = np.full((c, h + 2 * p, w + 2 * p), np.nan)
    padded[:, p:p + h, p:p + w] = x
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.empty((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = padded[:, i * s:i * s + k, j * s:j * s + k].reshape(c, -1)
            out[:, i, j] = np.nanmax(window, 1) if op == 'max' else np.nanmean(window, 1)
    return out


@pytest.mark.parametrize('op', ['max', 'avg'])
@pytest.mark.parametrize('k, s, p', [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 3, 1)])
def test_pooling_matches_numpy(op, k, s, p):
    net = make_net()
    net.add_pooling(k, op=op, strides=s, padding=p)
    x = torch.randn(2, 3, 10, 10)
    out = last_module(net)(x)
    assert tuple(out.shape[1:]) == net.output_shape == (3, (10 + 2 * p - k) // s + 1,
                                                        (10 + 2 * p - k) // s + 1)
    for row in range(2):
        assert np.allclose(out[row].numpy(), numpy_pool(x[row].double().numpy(), k, s, p, op),
                           atol=1e-6)


def test_pooling_strides_default_to_the_window_and_pairs_are_accepted():
    net = make_net()
    net.add_pooling((2, 5))
    assert net.output_shape == (3, 5, 2)
    assert net.nodes[-1].args == dict(fshape=(2, 5), op='max', strides=(2, 5), padding=(0, 0))


@pytest.mark.parametrize('h, k, s, p', [(4, 3, 1, 0), (4, 4, 2, 1), (5, 3, 2, 1), (3, 2, 3, 0),
                                        (6, 5, 2, 2), (1, 1, 1, 0)])
def test_deconvolution_output_size_follows_the_formula(h, k, s, p):
    net = make_net(pre=make_pre(image=(2, h, h + 1)))
    net.add_deconvolution(5, k, strides=s, padding=p)
    expected = (5, (h - 1) * s - 2 * p + k, h * s - 2 * p + k)
    assert net.output_shape == expected
    module = last_module(net)
    assert isinstance(module, torch.nn.ConvTranspose2d)
    assert tuple(module(torch.randn(2, 2, h, h + 1)).shape[1:]) == expected


def test_deconvolution_transposes_the_convolution():
    """<conv(x), y> == <x, deconv(y)> for the same filters: the adjoint."""
    net = make_net(pre=make_pre(image=(2, 4, 4)))
    net.add_deconvolution(3, 3, strides=2, padding=1, use_bias=False)
    deconv = last_module(net)
    y = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    x = torch.randn(1, 3, 7, 7, dtype=torch.float64)
    weight = deconv.weight.double()
    conv_x = F.conv2d(x, weight, stride=2, padding=1)          # (1, 2, 4, 4)
    assert torch.allclose((conv_x * y).sum(), (x * deconv.double()(y)).sum())


def test_lrn_matches_the_formula():
    net = make_net(pre=make_pre(image=(7, 3, 3)))
    net.add_lrn(depth=3, alpha=0.5, beta=0.75, k=2.0)
    x = torch.randn(2, 7, 3, 3)
    out = last_module(net)(x).numpy()
    a = x.double().numpy()
    expected = np.empty_like(a)
    for c in range(7):
        lo, hi = max(0, c - 1), min(7, c + 2)       # depth 3: one channel either side
        scale = 2.0 + 0.5 / 3 * (a[:, lo:hi] ** 2).sum(1)
        expected[:, c] = a[:, c] / scale ** 0.75
    assert np.allclose(out, expected, atol=1e-6)
    assert torch.allclose(last_module(net)(x), F.local_response_norm(x, 3, 0.5, 0.75, 2.0))


@pytest.mark.parametrize('channel, before, size', [('images', None, 3), ('seq', None, 4),
                                                   ('images', 'hidden', 6)])
def test_bias_adds_one_learned_value_per_channel_or_feature(channel, before, size):
    net = make_net(channel)
    if before:
        net.add_hidden(6)
    net.add_bias(init=Constant(0.0) if channel == 'seq' else None)
    module = last_module(net)
    assert module.bias.shape == (size,) and module.bias.requires_grad
    with torch.no_grad():
        module.bias.copy_(torch.arange(size, dtype=torch.float32))
    x = torch.zeros(2, *net.output_shape)
    out = module(x)
    channel_axis = 1 if len(net.output_shape) == 3 else -1
    assert torch.equal(out.movedim(channel_axis, -1)[0].reshape(-1, size)[0],
                       torch.arange(size, dtype=torch.float32))
    check_forward_shapes(net)


def test_skip_passes_through_values_and_tokens():
    net = make_net('tokens')
    net.add_skip()
    assert net.nodes[-1].dtype == 'int64' and net.output_shape == (6,)
    net.add_lookup_table(VOCAB, 3)
    x = torch.randint(0, VOCAB, (2, 6))
    assert torch.equal(net.module.layers[net.nodes[1].key](x), x)
    check_forward_shapes(net)


def test_lookup_table_embeds_integer_tokens():
    net = make_net('tokens')
    net.add_lookup_table(VOCAB, 5)
    assert net.output_shape == (6, 5)
    table = last_module(net)
    tokens = torch.tensor([[0, 3, 8, 3, 1, 2]])
    assert torch.equal(table(tokens)[0], table.weight[tokens[0]])
    net.add_lstm(4)
    net.add_recurrent_mean()
    net.add_logistic()
    check_forward_shapes(net)


@pytest.mark.parametrize('method, kind, gates', [('add_recurrent', torch.nn.RNN, 1),
                                                 ('add_lstm', torch.nn.LSTM, 4),
                                                 ('add_gru', torch.nn.GRU, 3)])
def test_recurrent_layers_keep_time_and_give_output_size_features(method, kind, gates):
    net = make_net('seq')
    getattr(net, method)(7)
    assert net.output_shape == (5, 7)
    rnn = last_module(net).rnn
    assert isinstance(rnn, kind) and rnn.batch_first
    assert rnn.weight_ih_l0.shape == (gates * 7, 4) and rnn.weight_hh_l0.shape == (gates * 7, 7)
    getattr(net, method)(3)                           # stacked
    assert net.output_shape == (5, 3)
    check_forward_shapes(net)


def test_elman_recurrence_matches_a_hand_written_loop():
    net = make_net('seq')
    net.add_recurrent(6, activation=nn.relu, bias=Uniform(-0.5, 0.5))
    rnn = last_module(net).rnn
    x = torch.randn(3, 5, 4)
    h = torch.zeros(3, 6)
    expected = []
    for t in range(5):
        h = torch.relu(x[:, t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T
                       + rnn.bias_hh_l0)
        expected.append(h)
    assert torch.allclose(last_module(net)(x), torch.stack(expected, 1), atol=1e-6)


def test_recurrent_net_passes_a_float64_gradient_check():
    net = make_net('seq')
    net.add_lstm(3)
    net.add_gru(3)
    net.add_recurrent(2)
    net.add_recurrent_mean()
    net.add_logistic()
    module = net.module.double().eval()
    params = dict(module.named_parameters())
    lstm_recur = next(k for k in params if k.endswith('weight_hh_l0'))
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    w = params[lstm_recur].detach().clone().requires_grad_(True)

    def run(x, w):
        return torch.func.functional_call(module, {lstm_recur: w}, ({'seq': x},))

    assert torch.autograd.gradcheck(run, (x, w), eps=1e-6, atol=1e-5)


def test_summary_layers_sum_average_or_keep_the_last_step():
    x = torch.randn(3, 5, 4)
    for method, reference in (('add_recurrent_sum', x.numpy().sum(1)),
                              ('add_recurrent_mean', x.numpy().mean(1)),
                              ('add_recurrent_last', x.numpy()[:, -1])):
        net = make_net('seq')
        getattr(net, method)()
        assert net.output_shape == (4,)
        assert np.allclose(last_module(net)(x).numpy(), reference, atol=1e-6)
        assert sum(p.numel() for p in last_module(net).parameters()) == 0


def test_dense_after_a_recurrent_layer_connects_to_every_time_step():
    net = make_net('seq')
    net.add_lstm(6)
    net.add_hidden(10)
    assert net.module.layers[net.nodes[-3].key].weight.shape == (10, 5 * 6)
    net.add_logistic()
    check_forward_shapes(net)


def test_batch_norm_dropout_and_prelu_work_on_sequences():
    net = make_net('seq')
    net.add_batch_normalization()
    bn = last_module(net)
    net.add_dropout(0.3)
    net.add_nonlinearity(nn.prelu)
    prelu = last_module(net)
    assert bn.weight.shape == (4,) and prelu.weight.shape == (4,)
    x = torch.randn(6, 5, 4) * 3 + 2
    bn.train()
    flat = x.reshape(-1, 4)                                   # statistics over batch and time
    expected = (x - flat.mean(0)) / torch.sqrt(flat.var(0, unbiased=False) + 1e-6)
    assert torch.allclose(bn(x), expected * bn.weight.detach(), atol=1e-4)   # pydnn's scales
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.0, 0.5, 1.0, 2.0]))
    assert torch.allclose(prelu(-torch.ones(1, 5, 4)), -torch.tensor([0.0, 0.5, 1.0, 2.0])
                          .expand(1, 5, 4))
    net.add_lstm(3)
    net.add_recurrent_last()
    net.add_logistic()
    check_forward_shapes(net)


def test_token_channels_are_served_as_int64_and_value_sequences_standardised():
    pre = make_pre()
    assert pre.shape_for('tokens') == (6,) and pre.dtype_for('tokens') == 'int64'
    assert pre.shape_for('seq') == (5, 4) and pre.dtype_for('seq') == 'float32'
    x, _ = pre.get_train()
    raw = pre.get_raw_x()[0]
    assert x['tokens'].dtype == torch.int64
    assert torch.equal(x['tokens'], torch.from_numpy(raw['tokens']))
    assert x['seq'].dtype == torch.float32 and abs(float(x['seq'].mean())) < 1e-5
    assert pre.max_token('tokens') == VOCAB - 1 and pre.max_token('seq') is None
    again = ArrayPreprocessor.from_state(pre.state_dict())
    assert again.dtype_for('tokens') == 'int64'
    assert torch.equal(again.preprocess(raw)['tokens'], x['tokens'])


@pytest.mark.parametrize('tokens, message', [
    (lambda t: t - 1, 'must hold tokens >= 0; received -1'),
    (lambda t: t + 0.5, 'must be integers of shape (N, T)'),
    (lambda t: t[:, :, None], 'must be integers of shape (N, T)'),
])
def test_bad_token_channels_are_refused(tokens, message):
    x = {'tokens': tokens(np.random.RandomState(0).randint(0, 5, (40, 6)))}
    sets = split_training_data((x, np.arange(40) % 2), 8, 50, 25, 25)
    with pytest.raises(DataError) as info:
        ArrayPreprocessor(sets, token_channels=['tokens'])
    assert message in str(info.value)
    with pytest.raises(DataError, match="token_channels names \\['words'\\]"):
        ArrayPreprocessor(split_training_data(({'tokens': np.zeros((40, 3), int)},
                                               np.arange(40) % 2), 8, 50, 25, 25),
                          token_channels=['words'])


def test_a_call_that_fails_after_drawing_weights_leaves_the_generator_where_it_was():
    """add_lookup_table draws its table, then finds a token past vocab_size: the net
    that goes on draws the weights of a net that never made the failed call."""
    straight, failed = make_net('tokens'), make_net('tokens')
    with pytest.raises(NetBuildError, match='holds token'):
        failed.add_lookup_table(VOCAB - 1, 3)
    for net in (straight, failed):
        net.add_lookup_table(VOCAB, 3)
        net.add_logistic()
    for (name, a), (_, b) in zip(straight.module.state_dict().items(),
                                 failed.module.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize('channel, call, message', [
    ('images', lambda n: n.add_lstm(4), 'add_lstm needs a (T, F) sequence input; got (3, 10, 10)'),
    ('images', lambda n: n.add_recurrent_sum(), 'add_recurrent_sum needs a (T, F) sequence'),
    ('seq', lambda n: n.add_pooling(2), 'add_pooling needs a (C, H, W) input; got (5, 4)'),
    ('seq', lambda n: n.add_lookup_table(9, 3), ('needs an integer token channel (N, T); got '
                                                 "float input (5, 4) from channel 'seq'")),
    ('images', lambda n: n.add_lookup_table(9, 3), 'token_channels'),
    ('tokens', lambda n: n.add_lookup_table(VOCAB - 1, 3),
     f"channel 'tokens' holds token {VOCAB - 1} but vocab_size is {VOCAB - 1}"),
    ('tokens', lambda n: n.add_lookup_table(0, 3), 'vocab_size must be a positive integer'),
    ('tokens', lambda n: n.add_lookup_table(VOCAB, 2.5), 'embedding_dim must be a positive'),
    ('tokens', lambda n: n.add_hidden(4), ('add_hidden needs float input; channel '
                                           "'tokens' holds integer tokens (6,): embed them")),
    ('tokens', lambda n: n.add_lstm(4), 'add_lstm needs float input'),
    ('images', lambda n: n.merge_data_channel('tokens'), 'holds integer tokens'),
    ('seq', lambda n: n.add_lstm(4, gate_activation=nn.relu),
     'gate_activation must be sigmoid'),
    ('seq', lambda n: n.add_gru(4, activation=nn.relu), 'activation must be tanh'),
    ('seq', lambda n: n.add_recurrent(4, activation=nn.sigmoid),
     'activation must be tanh or relu'),
    ('seq', lambda n: n.add_recurrent(0), 'output_size must be a positive integer'),
    ('images', lambda n: n.add_pooling(2, op='min'), "op must be one of 'max', 'avg'"),
    ('images', lambda n: n.add_pooling(3, padding=2), 'padding (2, 2) is more than half'),
    ('images', lambda n: n.add_pooling(11), 'a 11x11 window does not fit'),
    ('images', lambda n: n.add_deconvolution(2, 1, padding=6), 'leaves no output'),
    ('images', lambda n: n.add_deconvolution(2, (3, 3, 3)),
     'filter_shape must be a positive integer or a pair'),
    ('images', lambda n: n.add_lrn(alpha=0), 'alpha must be a number > 0'),
    ('images', lambda n: n.add_lrn(depth=0), 'depth must be a positive integer'),
])
def test_bad_calls_raise_at_once_with_a_clear_message(channel, call, message):
    net = make_net(channel)
    before = repr(net)
    with pytest.raises((NetBuildError, ConfigError, DataError)) as info:
        call(net)
    assert message in str(info.value)
    assert repr(net) == before


def build_everything(net):
    """All the new layers on three pathways of one net."""
    net.add_pooling(3, 'avg', 2, 1)                    # (3, 5, 5)
    net.add_lrn(3)
    net.add_deconvolution(4, 3, 2, 1, init=Gaussian(scale=0.1), bias=Constant(0.1))
    net.add_bias()
    net.add_skip()
    net.add_pooling(2)                                 # (4, 4, 4)
    seq = net.new_pathway('seq')
    seq.add_lstm(5, init_inner=Orthogonal(0.9))
    seq.add_batch_normalization()
    seq.add_gru(4)
    seq.add_recurrent_last()
    words = net.new_pathway('tokens')
    words.add_lookup_table(VOCAB, 3, init=Uniform(-0.1, 0.1))
    words.add_recurrent(4, activation=nn.relu)
    words.add_recurrent_sum()
    net.merge_pathways([seq, words])
    net.add_logistic()


def test_every_new_layer_survives_save_load_and_undo(tmp_path):
    net = make_net(output_dir=str(tmp_path))
    build_everything(net)
    check_forward_shapes(net)
    x = example_inputs(net, 5)
    net.module.eval()
    expected = net.module(x)
    loaded = nn.load(nn.save(net, str(tmp_path / 'net.pt')))
    assert loaded.calls == net.calls
    assert repr(loaded).splitlines()[1:] == repr(net).splitlines()[1:]
    loaded.module.eval()
    assert torch.allclose(loaded.module(x), expected)
    assert loaded.preprocessor.dtype_for('tokens') == 'int64'
    state = {k: v.clone() for k, v in net.module.state_dict().items()}
    net.undo()                                          # the logistic
    net.undo()                                          # the merge
    assert net.output_shape == (4, 4, 4)
    words = net.graph.handles[2]
    words.add_bias()                                    # the merged pathway is open again
    assert words._tip().out_shape == (4,)
    now = net.module.state_dict()
    assert all(torch.equal(now[k], state[k]) for k in now if k in state)


def test_net_size_counts_the_parameters_of_the_new_layers():
    net = make_net()
    build_everything(net)
    report = net.net_size(calibrate=False, verbose=False)
    assert report.total_params == sum(p.numel() for p in net.module.parameters())
    rows = {r['layer'].split(': ')[1]: r for r in report.rows}
    lstm = rows['lstm']
    assert lstm['params'] == 4 * 5 * (4 + 5) + 2 * 4 * 5
    assert lstm['mults'] == 5 * 4 * 5 * (4 + 5)               # T * gates * H * (F + H)
    assert rows['deconvolution']['mults'] == 3 * 5 * 5 * 4 * 9
    assert rows['pooling']['pool_loss'] == (1, 1)              # (9 - 2) % 2 rows, columns


def test_net_size_calibrates_nets_that_read_tokens():
    net = make_net('tokens')
    net.add_lookup_table(VOCAB, 4)
    net.add_lstm(4)
    net.add_recurrent_sum()
    net.add_logistic()
    report = net.net_size(verbose=False)
    assert report.seconds_per_sample > 0


def test_a_sequence_net_trains_and_predicts(tmp_path):
    net = make_net('tokens', output_dir=str(tmp_path))
    net.add_lookup_table(VOCAB, 4)
    net.add_lstm(6)
    net.add_recurrent_sum()
    net.add_logistic()
    history = net.train(nn.Adam(learning_rate=0.01), epochs=2)
    assert len(history['train_loss']) == 2 and all(math.isfinite(v)
                                                   for v in history['train_loss'])
    classes, probabilities = net.predict(net.preprocessor.get_raw_x()[2])
    assert classes.shape == (len(net.preprocessor.get_raw_y()[2]),)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
