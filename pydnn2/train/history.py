"""The training history: a dict of lists, one entry per epoch, that shows as a table.

``train`` returns a :class:`History` (also ``net.history``). It *is* a dict
(``history['valid_loss']``, ``json.dumps(history)``, ``pickle``), keyed by the
columns of the epoch table (:data:`~pydnn2.train.session.HISTORY_KEYS` and any
``valid_<metric>``); it only adds a readable ``repr`` (the epoch table, the
middle left out of a long one) and ``_repr_html_`` for notebooks. Columns
with no value in any epoch (no test set, say) are left out of both.

>>> h = History(epoch=[1, 2], phase=['main', 'main'], train_loss=[0.9, 0.5],
...             valid_loss=[0.8, 0.6], test_loss=[None, None], learning_rate=[0.1, 0.05])
>>> h['valid_loss'][-1]
0.6
>>> print(repr(h))
History: 2 epochs (2 main)
epoch  phase  train loss  valid loss  rate
    1  main       0.9000      0.8000   0.1
    2  main       0.5000      0.6000  0.05
"""

import html

from ..model.html import table_html
from ..table import Table


def _loss(value):
    return f'{value:.4f}'


def _error(value):
    return f'{100 * value:.2f}%'


def _general(value):
    return f'{value:.4g}' if isinstance(value, float) else str(value)


# key -> (column title, formatter), in the order of the epoch table
COLUMNS = {'epoch': ('epoch', str), 'phase': ('phase', str),
           'train_loss': ('train loss', _loss), 'train_error': ('train err', _error),
           'valid_loss': ('valid loss', _loss), 'valid_error': ('valid err', _error),
           'test_loss': ('test loss', _loss), 'test_error': ('test err', _error),
           'learning_rate': ('rate', lambda v: f'{v:.3g}'),
           'seconds': ('time', lambda v: f'{v:.2f}s')}
TEXT_ROWS = 20          # a longer history's repr shows its first and last TEXT_ROWS // 2


class History(dict):
    """What ``train`` returns: ``{column: [value per epoch]}``, shown as a table."""

    @classmethod
    def empty(cls):
        """The history of a net not trained yet: every column of the epoch table, empty."""
        return cls({key: [] for key in COLUMNS})

    @property
    def epochs(self):
        """The number of epochs recorded."""
        return len(self.get('epoch') or ())

    def _columns(self):
        """``(key, title, format)`` of each column with a value in some epoch."""
        keys = [k for k in COLUMNS if k in self] + [k for k in self if k not in COLUMNS]
        return [(k,) + COLUMNS.get(k, (k.replace('_', ' '), _general)) for k in keys
                if any(v is not None for v in self[k])]

    def _table(self, indices):
        """The :class:`Table` and the string rows of epochs ``indices``."""
        columns = self._columns()
        table = Table([title for _, title, _ in columns],
                      right=[i for i, (k, _, _) in enumerate(columns) if k != 'phase'])
        rows = [[('' if self[k][i] is None else fmt(self[k][i])) for k, _, fmt in columns]
                for i in indices]
        return table, rows

    def _title(self):
        phases = {}
        for phase in self.get('phase') or ():
            phases[phase] = phases.get(phase, 0) + 1
        counts = ', '.join(f'{n} {p}' for p, n in phases.items())
        return f'History: {self.epochs} epochs' + (f' ({counts})' if counts else '')

    def __repr__(self):
        n, half = self.epochs, TEXT_ROWS // 2
        if n <= TEXT_ROWS:
            table, rows = self._table(range(n))
            return f'{self._title()}\n{table.render(rows)}'
        table, rows = self._table(list(range(half)) + list(range(n - half, n)))
        lines = table.render(rows).splitlines()
        skipped = f'... {n - 2 * half} epochs not shown ...'
        return '\n'.join([self._title()] + lines[:half + 1] + [skipped] + lines[half + 1:])

    def _repr_html_(self):
        table, rows = self._table(range(self.epochs))
        return (f'<div class="pydnn2-history"><p><b>{html.escape(self._title())}</b></p>'
                f'<div style="max-height:24em;overflow-y:auto">'
                f'{table_html(table.header, rows, table.right)}</div></div>')
