"""The layer table of a net as HTML, with its pathways drawn as branches.

A notebook shows a net through ``NN._repr_html_``, which calls
:func:`layer_table_html`. The main pathway is the outer table, one row per
layer. A pathway merged back into it appears as a branch just above the merge
that joins it: an indented, collapsible block (``<details
class="pydnn2-branch">``) holding the pathway's own table, where pathways
merged into *it* nest in turn. Pathways not merged yet follow the table as
open branches.

>>> cells_html('td', ('a < b', '1'), right=(1,))
'<td>a &lt; b</td><td style="text-align:right">1</td>'
"""

import html

HEADER = ('#', 'call', 'layer', 'in -> out', 'params')
_RIGHT = (0, 4)          # columns of numbers
_BRANCH_STYLE = ('margin:2px 0 2px 1.5em;padding-left:0.6em;'
                 'border-left:3px solid #7a9cc6')


def cells_html(tag, cells, right=()):
    """One row's cells (strings) as ``<td>`` (or ``<th>``) elements; the columns
    ``right`` (numbers) aligned to the right."""
    return ''.join(f'<{tag} style="text-align:right">{html.escape(c)}</{tag}>'
                   if i in right else f'<{tag}>{html.escape(c)}</{tag}>'
                   for i, c in enumerate(cells))


def table_html(header, rows, right=()):
    """A plain HTML table: ``header`` and ``rows`` of strings, the columns
    ``right`` aligned to the right."""
    body = [f'<tr>{cells_html("th", header, right)}</tr>']
    body += [f'<tr>{cells_html("td", r, right)}</tr>' for r in rows]
    return f'<table>{"".join(body)}</table>'


def _cells(graph, node, params):
    """The five cells of a node's row."""
    ins = ' + '.join(str(graph.nodes[i].out_shape) for i in node.inputs) or '-'
    return (str(node.id), node.call, node.spec.describe(), f'{ins} -> {node.out_shape}',
            f'{params:,}')


def _merged_at(graph, pid):
    """``{merge node id: [pathway ids it joins into pid]}``."""
    joins, used = {}, set()
    for node in graph.nodes:
        if node.pathway != pid or len(node.inputs) < 2:
            continue
        for other, state in graph.pathways.items():
            if (state.merged_into == pid and other not in used
                    and state.tip in node.inputs[1:]):
                joins.setdefault(node.id, []).append(other)
                used.add(other)
    return joins


def _branch_title(graph, pid):
    """What a branch's summary line says: its number, where it starts and ends."""
    state = graph.pathways[pid]
    nodes = [n for n in graph.nodes if n.pathway == pid]
    if nodes and nodes[0].op == 'input':
        start = f"from channel {nodes[0].args['channel']!r}"
    else:
        start = f'split off after node {nodes[0].inputs[0] if nodes else state.tip}'
    end = ('not merged yet' if state.merged_into is None
           else f'merged into pathway {state.merged_into}')
    return f'pathway {pid}: {start}, {end} ({len(nodes)} nodes)'


def _branch(graph, pid, params):
    """A pathway's collapsible block: its summary line and its own table."""
    return (f'<details open class="pydnn2-branch" data-pathway="{pid}" '
            f'style="{_BRANCH_STYLE}"><summary>{html.escape(_branch_title(graph, pid))}'
            f'</summary>{_table(graph, pid, params)}</details>')


def _table(graph, pid, params):
    """The rows of pathway ``pid``, each merge preceded by the branches it joins."""
    joins = _merged_at(graph, pid)
    rows = [f'<tr>{cells_html("th", HEADER, _RIGHT)}</tr>']
    for node in graph.nodes:
        if node.pathway != pid:
            continue
        for other in joins.get(node.id, ()):
            rows.append(f'<tr><td colspan="{len(HEADER)}" style="padding:0">'
                        f'{_branch(graph, other, params)}</td></tr>')
        rows.append(f'<tr>{cells_html("td", _cells(graph, node, params[node.id]), _RIGHT)}</tr>')
    return f'<table class="pydnn2-layers">{"".join(rows)}</table>'


def layer_table_html(title, graph, params, footer=''):
    """The HTML of a net's layer table.

    Parameters
    ----------
    title : str
        The line above the table (the net's name, classes, batch, device).
    graph : pydnn2.model.graph.Graph
        The net's graph: its nodes and pathways.
    params : sequence of int
        The parameter count of each node, by node id.
    footer : str
        The line below the table (e.g. the total parameters).
    """
    open_ = [_branch(graph, pid, params) for pid in graph.unmerged()]
    return (f'<div class="pydnn2-net"><p><b>{html.escape(title)}</b></p>'
            f'{_table(graph, 0, params)}{"".join(open_)}'
            f'<p>{html.escape(footer)}</p></div>')
