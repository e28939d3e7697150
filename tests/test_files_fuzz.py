"""Hypothesis: a mutated pydnn2 file loads or is a ``FileFormatError``, never anything else.

Two kinds of damage: to the bytes on disk (truncation, flipped bytes, a zeroed
run), which the zip reader, the unpickler or the checksum must catch; and to
the contents (a deleted entry, a value of another type), sealed again with a
valid checksum, as a crafted file would be, so that rebuilding the net must
catch it.
"""

import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pydnn2 import files
from pydnn2 import neuralnet as nn
from pydnn2.errors import FileFormatError
from pydnn2.preprocess import split_training_data
from pydnn2.train import checkpoints

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope='module')
def saved(net_maker, digits_cached, tmp_path_factory):
    """A folder with a small trained net's files, ``original_net.pt`` and
    ``original_checkpoint.pt``, and room for damaged copies."""
    folder = tmp_path_factory.mktemp('fuzz')
    net = net_maker(split_training_data(digits_cached, 32, 60, 20, 20), folder)
    net.train(nn.Adam(learning_rate=0.01), epochs=1, checkpoint_every=1, verbose=False,
              progress=False)
    files.save(net, folder / 'original_net.pt')
    os.replace(checkpoints.list_checkpoints(net)[-1], folder / 'original_checkpoint.pt')
    return folder


def original(folder, kind):
    """The bytes of the undamaged file of ``kind``."""
    return (folder / f'original_{kind}.pt').read_bytes()


def load_or_file_format_error(path, kind):
    """Load ``path``; True when it loaded, False for a FileFormatError (anything else
    fails the test)."""
    loader = nn.load if kind == 'net' else nn.load_checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            loader(path)
        except FileFormatError:
            return False
    return True


BYTE_DAMAGE = st.one_of(
    st.tuples(st.just('truncate'), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just('flip'), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                  st.integers(1, 255)), min_size=1, max_size=12)),
    st.tuples(st.just('zero'), st.tuples(st.floats(0, 1, exclude_max=True),
                                         st.integers(1, 512))),
)


def damage_bytes(data, damage):
    """``data`` truncated, with bytes xor-ed, or with a run zeroed."""
    how, where = damage
    data = bytearray(data)
    if how == 'truncate':
        return bytes(data[:int(where * len(data))])
    if how == 'flip':
        for place, mask in where:
            data[int(place * len(data))] ^= mask
        return bytes(data)
    start = int(where[0] * len(data))
    data[start:start + where[1]] = bytes(len(data[start:start + where[1]]))
    return bytes(data)


@SETTINGS
@given(kind=st.sampled_from(['net', 'checkpoint']), damage=BYTE_DAMAGE)
def test_damaged_bytes_load_or_raise_a_file_format_error(saved, kind, damage):
    path = saved / f'bytes_{kind}.pt'
    path.write_bytes(damage_bytes(original(saved, kind), damage))
    load_or_file_format_error(path, kind)


def paths_in(tree, prefix=()):
    """Every path (a tuple of keys and indices) to a value inside dicts and lists."""
    found = [prefix] if prefix else []
    items = (tree.items() if isinstance(tree, dict)
             else enumerate(tree) if isinstance(tree, list) else ())
    for key, value in items:
        found += paths_in(value, prefix + (key,))
    return found


REPLACEMENTS = st.sampled_from([None, 0, -1, 1.5, float('nan'), True, 'x', 'add_hidden', [],
                                {}, [1, 2], {'pathway': 0}, {'layer': 'nope'},
                                torch.zeros(2), torch.zeros((), dtype=torch.int64), 2 ** 40])


def change(state, path, replacement, delete):
    """Delete the entry at ``path`` or replace its value."""
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement


@SETTINGS
@given(kind=st.sampled_from(['net', 'checkpoint']), data=st.data(), delete=st.booleans(),
       replacement=REPLACEMENTS)
@pytest.mark.slow
def test_crafted_contents_load_or_raise_a_file_format_error(saved, kind, data, delete,
                                                            replacement):
    path = saved / f'contents_{kind}.pt'
    path.write_bytes(original(saved, kind))
    state = torch.load(path, weights_only=True)
    targets = [p for p in paths_in(state) if p[0] != 'checksum'
               and (kind == 'net' or p[0] == 'net')]     # load_checkpoint reads only the net
    where = data.draw(st.sampled_from(targets), label='path')
    change(state, where, replacement, delete)
    torch.save(files.sealed(state), path)
    load_or_file_format_error(path, kind)


def test_the_fuzz_reaches_the_contents(saved):
    """Control: an undamaged file loads, and a sealed change is judged by its contents
    (not refused by the checksum), so the test above exercises the rebuilding."""
    path = saved / 'control.pt'
    path.write_bytes(original(saved, 'net'))
    assert load_or_file_format_error(path, 'net')
    state = torch.load(path, weights_only=True)
    change(state, ('config', 'seed'), 3, delete=False)
    torch.save(files.sealed(state), path)
    assert load_or_file_format_error(path, 'net')
