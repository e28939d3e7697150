"""What the tracking callbacks record, whatever they write to.

- :func:`epoch_scalars`: the numbers of an epoch's row (losses, errors,
  metrics, learning rate, seconds) plus the rule's momentum;
- :func:`run_params`: the net's settings and builder calls, the training
  options, the learning rule and the annealer, as flat ``{name: text}``;
- :func:`end_figures`: the confusion matrix and the worst mistakes, drawn at
  the end of training.

>>> epoch_scalars({'epoch': 3, 'phase': 'main', 'train_loss': 0.5, 'valid_loss': None})
{'train_loss': 0.5}
"""

import dataclasses
import math

from ..evaluate import interpret, plots
from ..extras import require

#: Row keys that are not scalars to plot.
NOT_SCALARS = ('epoch', 'phase')
#: Training options that say how a call ran, not what it learned: not logged as params.
NOT_PARAMS = ('callbacks', 'resume', 'overwrite', 'accept_data_change', 'verbose', 'progress',
              'plot', 'speed')
#: The longest param value MLflow stores; longer ones are cut to this.
MAX_PARAM = 6000


def epoch_scalars(row, rule=None):
    """``{key: float}`` of every finite number in the epoch's ``row``, and
    ``momentum`` when ``rule`` has one (the momentum this epoch trained with)."""
    scalars = {k: float(v) for k, v in row.items()
               if k not in NOT_SCALARS and isinstance(v, (int, float))
               and not isinstance(v, bool) and math.isfinite(v)}
    momentum = getattr(rule, 'momentum', None)
    if isinstance(momentum, (int, float)) and math.isfinite(momentum):
        scalars['momentum'] = float(momentum)
    return scalars


def _plain_attrs(obj, prefix):
    """``{prefix.attr: text}`` for the public plain attributes of ``obj``."""
    return {f'{prefix}.{k}': repr(v) if isinstance(v, str) else str(v)
            for k, v in sorted(vars(obj).items())
            if not k.startswith('_') and (v is None or isinstance(v, (bool, int, float, str)))}


def call_text(call):
    """One builder call as text: ``add_hidden(num_units=16, batch_normalize=True)``
    (arguments left at None are left out; a pathway other than 0 is named)."""
    args = ', '.join(f'{k}={v!r}' for k, v in call['args'].items() if v is not None)
    where = f'pathway {call["pathway"]}: ' if call.get('pathway') else ''
    return f'{where}{call["method"]}({args})'


def net_params(net):
    """The net's settings and its builder calls, one param each."""
    params = {'net.name': net.name, 'net.channel': net.channel,
              'net.num_classes': str(net.num_classes), 'net.batch_size': str(net.batch_size),
              'net.activation': net.activation_name, 'net.initialization': net.initialization,
              'net.preprocessor': type(net.preprocessor).__name__}
    for i, call in enumerate(net.calls):
        params[f'net.call.{i:02d}'] = call_text(call)
    return params


def run_params(net, config=None, rule=None):
    """The params of a training run: :func:`net_params`, the training options of
    ``config`` (a TrainConfig: not those of :data:`NOT_PARAMS`; the speed options by
    name), and the learning rule's and annealer's kinds and settings."""
    params = net_params(net)
    if config is not None:
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                   if f.name not in NOT_PARAMS}
        options.update(dataclasses.asdict(config.speed))
        params.update({f'train.{k}': str(v) for k, v in options.items()})
    if rule is not None:
        params['rule'] = type(rule).__name__
        params.update(_plain_attrs(rule, 'rule'))
        params['annealer'] = type(rule.annealer).__name__
        params.update(_plain_attrs(rule.annealer, 'annealer'))
    return {k: v[:MAX_PARAM] for k, v in params.items()}


def evaluated_set(net):
    """The set the end figures show: 'valid', or 'test' / 'train' when it is empty (a
    set whose size is unknown until read counts as not empty)."""
    pre = net.preprocessor
    return next((name for name in ('valid', 'test') if pre.num_rows(name) != 0), 'train')


def end_figures(net):
    """``{'confusion': Figure, 'mistakes': Figure}`` of the net on :func:`evaluated_set`,
    and the interpretation they were drawn from (or ``({}, None)`` when the
    preprocessor holds no data)."""
    pre = net.preprocessor
    if hasattr(pre, 'has_data') and not pre.has_data():
        return {}, None
    found = interpret(net, evaluated_set(net))
    return {'confusion': plots.plot_confusion(found, title=f'confusion on the '
                                                         f'{found.set_name} set'),
            'mistakes': plots.plot_mistakes(found, count=16)}, found


def check_figures(logger):
    """Fail before training, not after it, when matplotlib is missing."""
    require('matplotlib', f'{logger} (its figures)', 'track')
