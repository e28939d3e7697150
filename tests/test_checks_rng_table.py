"""The shared small pieces: argument checks, seeds and generator states, the table printer."""

import numpy as np
import pytest
import torch

from pydnn2 import checks, rng as rngs
from pydnn2.errors import ConfigError, NetBuildError
from pydnn2.table import Table


@pytest.mark.parametrize('call, message', [
    (lambda: checks.integer(0, 'num', 1), 'num must be a positive integer; received 0'),
    (lambda: checks.integer(-1, 'epochs', 0), 'epochs must be a non-negative integer'),
    (lambda: checks.integer(True, 'n', 0), 'received True'),
    (lambda: checks.integer(2.0, 'n', 0), 'received 2.0'),
    (lambda: checks.integer(5, 'n', 1, maximum=4), 'n must be an integer from 1 to 4'),
    (lambda: checks.integer('3', 'k', 2, none=True), 'k must be an integer >= 2 or None'),
    (lambda: checks.number(float('nan'), 'rate', above=0), 'rate must be a number > 0'),
    (lambda: checks.number(1, 'p', at_least=0, below=1), r'p must be a number in [0, 1)'),
    (lambda: checks.number(0, 'e', above=0, at_most=1, where='Adam'),
     r'Adam: e must be a number in (0, 1]; received 0'),
    (lambda: checks.pair((3, 0), 'fshape'), 'fshape must be a positive integer or a pair'),
    (lambda: checks.pair((1, 2, 3), 'strides', 0), 'non-negative integer or a pair'),
    (lambda: checks.number_pair((1, 'a'), 'range', 'degrees'), 'a (low, high) pair of degrees'),
    (lambda: checks.one_of('avg2', 'op', ('max', 'avg')), "op must be one of 'max', 'avg'"),
    (lambda: checks.one_of(1, 'flag', (True, False)), 'flag must be one of True, False'),
    (lambda: checks.batch_size(0), 'batch_size must be a positive integer; received 0'),
])
def test_bad_arguments_are_named_with_what_was_expected(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)


def test_good_arguments_come_back_in_their_plain_types():
    assert checks.integer(np.int64(3), 'n', 1) == 3
    assert type(checks.integer(np.int64(3), 'n')) is int
    assert checks.integer(None, 'n', 1, none=True) is None
    assert checks.number(np.float32(0.5), 'p', at_least=0, at_most=1) == 0.5
    assert checks.pair(2, 'k') == (2, 2) and checks.pair([3, 4], 'k') == (3, 4)
    assert checks.number_pair((1, 2.5), 'r') == (1.0, 2.5)
    assert checks.one_of(None, 'amp', (None, 'bf16')) is None


def test_the_error_class_can_be_chosen():
    with pytest.raises(NetBuildError, match='add_hidden: num_units'):
        checks.integer(0, 'num_units', 1, where='add_hidden', error=NetBuildError)


def test_seeds_are_drawn_once_and_ints_are_taken_as_they_are():
    assert rngs.seed_from(12) == 12 and rngs.seed_from(2 ** 31 - 1) == 0
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    assert rngs.seed_from(a) == rngs.seed_from(b) != rngs.seed_from(a)
    assert 0 <= rngs.seed_from(np.random.default_rng(1)) < 2 ** 31 - 1
    assert rngs.seed_from(None, default=0) == 0
    with pytest.raises(ConfigError, match='rng must be .* or None; received str'):
        rngs.seed_from('seed', default=0)
    with pytest.raises(ConfigError, match='an int seed; received NoneType'):
        rngs.seed_from(None)


@pytest.mark.parametrize('make', [lambda: np.random.RandomState(3),
                                  lambda: np.random.default_rng(3)])
def test_a_generator_state_round_trips_through_a_safe_file(make, tmp_path):
    generator = make()
    generator.standard_normal(5)                 # a cached Gaussian for RandomState
    state = rngs.numpy_state(generator)
    torch.save(state, tmp_path / 's.pt')
    expected = generator.standard_normal(7)
    other = make()
    rngs.set_numpy_state(other, torch.load(tmp_path / 's.pt', weights_only=True))
    np.testing.assert_array_equal(other.standard_normal(7), expected)
    assert rngs.numpy_state(7) is None


def test_torch_states_round_trip():
    states = rngs.torch_states()
    first = torch.rand(3)
    rngs.set_torch_states(states)
    assert torch.equal(torch.rand(3), first)


def test_the_table_aligns_renders_and_escapes():
    table = Table(('a', 'bb'), right=(1,), widths=(3, 4), gap=1)
    assert table.line(('x', '12')) == 'x     12'
    assert table.render([('long', '1')]).splitlines() == ['a    bb', 'long  1']
    page = table.html([('<b>', '1')])
    assert page.count('<tr>') == 2 and '&lt;b&gt;' in page and '<th>bb</th>' in page
