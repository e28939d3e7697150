"""The one table printer: the layer table, the size report and the epoch table.

A :class:`Table` knows its column titles and which columns are right-aligned.
:meth:`Table.render` sizes the columns to their contents (for a finished
table); :meth:`Table.line` pads to fixed widths (for a table printed a row at
a time, such as the epoch table); :meth:`Table.html` writes an HTML table for
notebooks. Cells are strings.

>>> table = Table(('name', 'size'), right=(1,))
>>> print(table.render([('conv', '1,024'), ('dense', '10')]))
name    size
conv   1,024
dense     10
"""

import html


class Table:
    """Columns of text.

    Parameters
    ----------
    header : sequence of str
        The column titles.
    right : sequence of int
        Indices of the columns aligned to the right (numbers).
    widths : sequence of int, optional
        Fixed column widths for :meth:`line`; :meth:`render` computes its own.
    gap : int
        Spaces between columns.
    """

    def __init__(self, header, right=(), widths=None, gap=2):
        self.header = tuple(header)
        self.right = frozenset(right)
        self.widths = tuple(widths) if widths is not None else tuple(map(len, self.header))
        self.gap = gap

    def line(self, cells, widths=None):
        """One row padded to the column widths (trailing spaces removed)."""
        widths = widths or self.widths
        padded = (c.rjust(w) if i in self.right else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells, widths)))
        return (' ' * self.gap).join(padded).rstrip()

    def render(self, rows):
        """The header and ``rows``, each column as wide as its widest cell."""
        rows = [tuple(r) for r in rows]
        widths = [max(len(r[i]) for r in [self.header] + rows) for i in range(len(self.header))]
        return '\n'.join(self.line(r, widths) for r in [self.header] + rows)

    def html(self, rows):
        """The header and ``rows`` as an HTML ``<table>``."""
        def cells(tag, row):
            return ''.join(f'<{tag}>{html.escape(c)}</{tag}>' for c in row)

        body = [f'<tr>{cells("th", self.header)}</tr>']
        body += [f'<tr>{cells("td", r)}</tr>' for r in rows]
        return f'<table>{"".join(body)}</table>'
