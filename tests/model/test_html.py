"""What a notebook shows: the net's HTML layer table with pathways as branches, and
the size report's text and HTML tables."""

import html.parser

import numpy as np

from pydnn2 import neuralnet as nn
from pydnn2.model.size import net_size
from pydnn2.preprocess import ArrayPreprocessor, split_training_data


class Element:
    """A parsed HTML element: its tag, attributes and children (text as str)."""

    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children = tag, dict(attrs), []

    def find_all(self, tag, **attrs):
        """Every descendant element with ``tag`` and the attribute values ``attrs``."""
        found = []
        for child in self.children:
            if isinstance(child, Element):
                if child.tag == tag and all(child.attrs.get(k) == v for k, v in attrs.items()):
                    found.append(child)
                found += child.find_all(tag, **attrs)
        return found

    def text(self):
        return ''.join(c if isinstance(c, str) else c.text() for c in self.children)


class TreeBuilder(html.parser.HTMLParser):
    """Parses HTML into :class:`Element` trees, checking every tag is closed in order."""

    VOID = {'br', 'hr', 'img', 'col'}

    def __init__(self):
        super().__init__()
        self.stack = [Element('root', {})]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs)
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f'</{tag}> closes <{self.stack[-1].tag}>'
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(text):
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    assert len(builder.stack) == 1, 'unclosed tags'
    return builder.stack[0]


def own_rows(table):
    """The node ids of a table's own rows (not of the branches nested in it)."""
    rows = [c for c in table.children if isinstance(c, Element) and c.tag == 'tr']
    cells = [[c for c in r.children if isinstance(c, Element)] for r in rows]
    return [int(c[0].text()) for c in cells if c[0].tag == 'td' and 'colspan' not in c[0].attrs]


def make_net(extra=None):
    rng = np.random.RandomState(0)
    x = {'images': rng.rand(80, 1, 8, 8).astype(np.float32),
         'shapes': rng.rand(80, 2).astype(np.float32)}
    pre = ArrayPreprocessor(split_training_data((x, np.arange(80) % 4), 8, 60, 20, 20))
    return nn.NN(pre, 'images', 4, 8, np.random.RandomState(1), verbose=False, device='cpu')


def test_a_plain_net_is_one_table_with_every_layer_and_the_total():
    net = make_net()
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_hidden(16)
    net.add_logistic()
    tree = parse(net._repr_html_())
    assert not tree.find_all('details')
    tables = tree.find_all('table')
    assert len(tables) == 1 and own_rows(tables[0]) == [n.id for n in net.nodes]
    text = tree.text()
    for row in net.layer_table():
        assert row['layer'] in text and row['call'] in text
    total = sum(p.numel() for p in net.module.parameters())
    assert f'total parameters: {total:,}' in text
    assert "NN 'net': 4 classes, batch 8, on cpu" in text


def test_pathways_are_branches_shown_above_the_merge_that_joins_them():
    net = make_net()
    net.add_conv_pool(4, (3, 3), (1, 1))                  # node 1
    branch = net.split_pathways()                         # pathway 1
    sizes = net.new_pathway('shapes')                     # pathway 2: nodes 2..5
    sizes.add_hidden(6)
    branch.add_hidden(4)                                  # nodes 6..8
    net.merge_pathways([branch, sizes])                   # node 9
    net.add_logistic()                                    # node 10
    tree = parse(net._repr_html_())
    main = tree.find_all('table')[0]
    assert own_rows(main) == [0, 1, 9, 10]
    branches = {int(d.attrs['data-pathway']): d for d in tree.find_all('details')}
    assert set(branches) == {1, 2}
    for pid, branch_element in branches.items():
        assert branch_element.attrs['class'] == 'pydnn2-branch'
        nodes = [n.id for n in net.nodes if n.pathway == pid]
        assert own_rows(branch_element.find_all('table')[0]) == nodes
        summary = branch_element.find_all('summary')[0].text()
        assert f'pathway {pid}' in summary and 'merged into pathway 0' in summary
    assert 'split off after node 1' in branches[1].find_all('summary')[0].text()
    assert "from channel 'shapes'" in branches[2].find_all('summary')[0].text()
    # the branches sit in rows of the main table just before the merge's row
    rows = [c for c in main.children if isinstance(c, Element) and c.tag == 'tr']
    kinds = ['branch' if r.find_all('details') else r.find_all('td')[0].text()
             for r in rows[1:]]
    assert kinds == ['0', '1', 'branch', 'branch', '9', '10']
    for row in net.layer_table():
        assert row['layer'] in tree.text()


def test_nested_and_unmerged_pathways_are_branches_too():
    net = make_net()
    outer = net.split_pathways()                          # pathway 1
    outer.add_conv_pool(2, (3, 3), (1, 1))
    inner = outer.split_pathways()                        # pathway 2, split from pathway 1
    inner.add_hidden(3)
    outer.merge_pathways(inner)
    net.merge_pathways(outer)
    loose = net.split_pathways()                          # pathway 3, never merged
    loose.add_hidden(5)
    tree = parse(net._repr_html_())
    branches = {int(d.attrs['data-pathway']): d for d in tree.find_all('details')}
    assert set(branches) == {1, 2, 3}
    assert branches[2] in branches[1].find_all('details')          # nested in its parent
    assert 'merged into pathway 1' in branches[2].find_all('summary')[0].text()
    assert 'not merged yet' in branches[3].find_all('summary')[0].text()
    assert branches[3] not in tree.find_all('table')[0].find_all('details')


def test_names_are_escaped():
    net = make_net()
    net.name = '<b>&'
    out = net._repr_html_()
    assert '&lt;b&gt;&amp;' in out and '<b>&' not in out


def test_the_size_report_shows_as_its_table_in_text_and_html():
    report = net_size((1, 8, 8), [('conv', {'filter': (4, 3, 3), 'pool': (2, 2)}),
                                  ('full', {'num': 10})], calibrate=False, verbose=False)
    # conv 4 of 3x3 over 8x8: map 6x6, pool 2x2 -> 3x3 losing nothing; params 4*9 + 4 = 40,
    # mults 36 * 36 = 1,296. full 10 over 4*3*3 = 36: mults 360, params 370.
    text = repr(report)
    assert text == str(report) and not text.startswith('SizeReport(')
    lines = text.splitlines()
    assert lines[0].split() == ['layer', 'output', 'mults', 'adds', 'params', 'pool', 'loss']
    assert lines[1].split() == ['conv', '0', '(4,', '3,', '3)', '1,296', '1,296', '40']
    assert lines[3].split() == ['total', '1,656', '1,656', '410']
    assert 'training memory: about' in text
    tree = parse(report._repr_html_())
    rows = [[td.text() for td in tr.find_all('td')] for tr in tree.find_all('tr')[1:]]
    assert rows == [['conv 0', '(4, 3, 3)', '1,296', '1,296', '40', ''],
                    ['full 1', '(10,)', '360', '360', '370', ''],
                    ['total', '', '1,656', '1,656', '410', '']]
    assert 'training memory: about' in tree.text()


def test_a_calibrated_size_report_shows_its_time_estimate():
    net = make_net()
    net.add_hidden(8)
    net.add_logistic()
    report = net.net_size(verbose=False)
    assert 'estimated time per epoch of 48 rows on cpu' in repr(report)
    assert 'estimated time per epoch of 48 rows on cpu' in report._repr_html_()
