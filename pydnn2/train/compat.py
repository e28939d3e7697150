"""What a resume compares before it changes anything: :func:`check`.

A checkpoint can only continue the run that wrote it. Before a single
tensor, optimizer slot or generator is restored, :func:`check` compares the
checkpoint with the net about to train and lists every difference in one
:class:`~pydnn2.errors.ConfigError`:

- the net's settings (input channel, ``num_classes``, ``batch_size``,
  default activation, initialisation) and its recorded builder calls;
- the name and shape of every weight and buffer;
- the learning rule's and the annealer's kinds and state keys;
- the preprocessor's kind, its state's keys and settings (strings and
  flags), and whether it accepts the saved random state (tried, then put
  back);
- an interrupted epoch's number of batches against what this data and batch
  size give;
- the data: a :func:`fingerprint` of each raw set (its layout, and a
  SHA-256 of :data:`SAMPLE_ROWS` rows spread evenly through it, labels
  included), unless ``accept_data_change=True``.

>>> import numpy as np
>>> sets = [(np.arange(12.).reshape(6, 2), np.arange(6) % 2, None)] * 3
>>> fingerprint(sets)['train']['layout']
{'shape': [6, 2], 'dtype': '<f8'}
"""

import hashlib

import numpy as np
import torch

from ..errors import ConfigError
from ..files import plain_tree
from ..preprocess import rows

SAMPLE_ROWS = 64               # rows of each set hashed into the data fingerprint
SETS = ('train', 'valid', 'test')
NET_SETTINGS = ('channel', 'num_classes', 'batch_size', 'activation', 'initialization')
MAX_LISTED = 12                # differences listed in one error, at most


def _layout(x):
    """The shape and dtype of a raw set (a list of arrays: its length; a dict: per key)."""
    if isinstance(x, dict):
        return {str(k): _layout(x[k]) for k in sorted(x, key=str)}
    if isinstance(x, (list, tuple)):
        return {'rows': len(x)}
    if rows.is_rows(x):                 # (np.asarray would read a view of a memmap)
        return {'shape': list(x.shape), 'dtype': x.dtype.str}
    array = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return {'shape': list(array.shape), 'dtype': array.dtype.str}


def _feed(sha, value):
    """Hash a row (or a dict of rows): dtype, shape and bytes."""
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            sha.update(str(key).encode())
            _feed(sha, value[key])
        return
    array = np.ascontiguousarray(value.numpy() if isinstance(value, torch.Tensor) else value)
    sha.update(f'{array.dtype.str}{array.shape}'.encode())
    sha.update(repr(array.tolist()).encode() if array.dtype == object else array.tobytes())


def _pick(x, index):
    """Row ``index`` of a raw set (an array, a list of arrays or a dict of those); a
    memory-mapped set's row is read from its file, not through its mapping."""
    if isinstance(x, dict):
        return {k: _pick(v, index) for k, v in x.items()}
    if rows.is_rows(x):
        return rows.reader(x).row(index)
    return x[index]


def set_fingerprint(x, y):
    """Layout and SHA-256 of up to :data:`SAMPLE_ROWS` rows (and their labels) spread
    evenly through one raw set."""
    rows = len(y)
    picks = np.unique(np.linspace(0, rows - 1, min(rows, SAMPLE_ROWS)).round().astype(int))
    sha = hashlib.sha256(f'rows {rows}'.encode())
    for index in picks:
        _feed(sha, _pick(x, int(index)))
        _feed(sha, np.asarray(y[int(index)]))
    return {'layout': _layout(x), 'rows': rows, 'sha256': sha.hexdigest()}


def fingerprint(sets):
    """The fingerprint of the ``[train, valid, test]`` sets, each ``(x, y, ...)``."""
    return {name: set_fingerprint(s[0], s[1]) for name, s in zip(SETS, sets)}


def data_fingerprint(preprocessor):
    """:func:`fingerprint` of the preprocessor's raw sets, or None when they cannot
    be served or hashed (a custom preprocessor without ``get_raw_x``): a resume
    then goes without the data check."""
    try:
        return fingerprint(list(zip(preprocessor.get_raw_x(), preprocessor.get_raw_y())))
    except Exception:  # noqa: BLE001 - data it cannot read or hash goes unchecked
        return None


def _outline(value, path, out, settings):
    """Flatten a state to ``{dotted path: description}``: its keys, and with
    ``settings`` its strings, flags and None by value (numbers and tensors are
    data: only their presence counts)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _outline(item, f'{path}.{key}' if path else str(key), out, settings)
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple))
                                                  for v in value):
        for i, item in enumerate(value):
            _outline(item, f'{path}[{i}]', out, settings)
    elif settings and (isinstance(value, (str, bool)) or value is None):
        out[path] = repr(value)
    else:
        out[path] = 'present'
    return out


def _fits(what, saved, owner, diffs):
    """Try ``owner.set_random_state(saved)`` and put the owner's state back; a failure is
    a difference. (What a random state accepts is the owner's to say.)"""
    before = owner.random_state()
    try:
        owner.set_random_state(saved)
    except Exception as exc:  # noqa: BLE001 - any refusal is reported, not raised
        diffs.append(f'{what}: {type(exc).__name__}: {exc}')
    finally:
        owner.set_random_state(before)


def _compare(what, saved, here, diffs):
    """Append ``what: <key> is A in the checkpoint, B here`` for each differing key."""
    for key in sorted(set(saved) | set(here)):
        a, b = saved.get(key, 'missing'), here.get(key, 'missing')
        if a != b:
            diffs.append(f'{what} {key!r}: {a} in the checkpoint, {b} here')


def _call_text(call):
    args = ', '.join(f'{k}={v!r}' for k, v in call.get('args', {}).items() if v is not None)
    return f"{call.get('method')}({args})"


def _calls(saved, here, diffs):
    """Each differing builder call, by position."""
    if len(saved) != len(here):
        diffs.append(f'builder calls: {len(saved)} in the checkpoint, {len(here)} here '
                     '(a different net)')
    for i, (a, b) in enumerate(zip(saved, here)):
        if a != b:
            diffs.append(f'builder call {i + 1}: {_call_text(a)} in the checkpoint, '
                         f'{_call_text(b)} here (a different net)')


def _net(state, net, diffs):
    """Settings, builder calls, weight and buffer shapes."""
    config = state['net'].get('config', {})
    for key in NET_SETTINGS:
        here = net.activation_name if key == 'activation' else getattr(net, key)
        if key in config and config[key] != here:
            diffs.append(f'{key}: {config[key]!r} in the checkpoint, {here!r} here')
    _calls(state['net'].get('calls', []), plain_tree(net.calls), diffs)
    shapes = {k: f'shape {tuple(v.shape)}' for k, v in state['net'].get('weights', {}).items()}
    _compare('weight', shapes, {k: f'shape {tuple(v.shape)}'
                                for k, v in net.module.state_dict().items()}, diffs)


def _rule(state, rule, checks, diffs):
    """The learning rule's and the annealer's kinds and state keys."""
    saved = state['session']['rule']
    if saved['class'] != type(rule).__name__:
        diffs.append(f"learning rule: {saved['class']} in the checkpoint, "
                     f'{type(rule).__name__} here (resume with the same learning rule)')
        return
    annealer = checks.get('annealer')
    if annealer is not None and annealer != type(rule.annealer).__name__:
        diffs.append(f'annealer: {annealer} in the checkpoint, '
                     f'{type(rule.annealer).__name__} here')
        return
    _compare('learning rule state', _outline(saved['state'], '', {}, False),
             _outline(rule.state_dict(), '', {}, False), diffs)


def _preprocessor(state, pre, diffs):
    """Kind, state keys and settings, random state keys and shapes."""
    saved = state['net']['preprocessor']
    if saved['class'] != type(pre).__name__:
        diffs.append(f"preprocessor: {saved['class']} in the checkpoint, "
                     f'{type(pre).__name__} here')
        return
    _compare('preprocessor state', _outline(saved['state'], '', {}, True),
             _outline(pre.state_dict(), '', {}, True), diffs)
    _fits('preprocessor random state', state['session']['rng']['preprocessor'], pre, diffs)
    if state.get('epoch_state'):
        _fits('the interrupted epoch\'s preprocessor state',
              state['epoch_state']['preprocessor'], pre, diffs)


def _epoch(state, net, diffs):
    """An interrupted epoch's batches against what this data and batch size give."""
    epoch = state.get('epoch_state')
    if not epoch or epoch.get('losses') is None:
        return
    rows = net.preprocessor.num_rows('train' if epoch['phase'] == 'main' else 'all')
    if rows is None:                    # a stream: its length is known only once read
        return
    saved, here = len(epoch['losses']), rows // net.batch_size
    if saved != here:
        diffs.append(f"the interrupted {epoch['phase']} epoch: {saved} batches in the "
                     f'checkpoint, {here} here ({rows} rows in batches of {net.batch_size})')


def _data(saved, here, diffs):
    """Each raw set whose fingerprint differs."""
    if not saved or not here:
        return
    for name in SETS:
        a, b = saved.get(name), here.get(name)
        if a is None or b is None or a == b:
            continue
        if a['layout'] != b['layout'] or a['rows'] != b['rows']:
            diffs.append(f"{name} data: {a['rows']} rows {a['layout']} in the checkpoint, "
                         f"{b['rows']} rows {b['layout']} here")
        else:
            diffs.append(f'{name} data: same shape, but the sampled rows differ (SHA-256 '
                         f"{a['sha256'][:12]}... in the checkpoint, {b['sha256'][:12]}... here)")


def differences(state, net, rule, data=None, accept_data_change=False):
    """Every way checkpoint ``state`` does not fit ``net`` and ``rule``, as lines of text
    (``data``: this run's :func:`data_fingerprint`)."""
    diffs = []
    checks = state.get('checks') or {}
    _net(state, net, diffs)
    _rule(state, rule, checks, diffs)
    _preprocessor(state, net.preprocessor, diffs)
    _epoch(state, net, diffs)
    if not accept_data_change:
        _data(checks.get('data'), data, diffs)
    return diffs


def check(state, path, net, rule, data=None, accept_data_change=False):
    """Raise :class:`ConfigError` listing every difference between checkpoint ``state``
    (read from ``path``) and the run about to resume it; changes nothing."""
    diffs = differences(state, net, rule, data, accept_data_change)
    if not diffs:
        return
    shown = diffs[:MAX_LISTED] + ([f'... and {len(diffs) - MAX_LISTED} more']
                                  if len(diffs) > MAX_LISTED else [])
    only_data = all(' data: ' in d for d in diffs)
    advice = ('If the data changed on purpose, pass accept_data_change=True with resume'
              if only_data else 'Build the net, rule, preprocessor and data as they were to '
              'resume it, or read it with load_checkpoint')
    raise ConfigError(f'{path!r} cannot be resumed by this run (nothing was changed):\n'
                      + '\n'.join(f'  - {d}' for d in shown) + f'\n{advice}')
