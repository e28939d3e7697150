"""Looking inside a net: ``net.layers`` and ``net.get_description()`` (as in neon).

Each node of the graph (channel inputs, layers, merges) is one entry. A
layer's parameters go by the short names its spec gives them (neon's):
``W`` (weights, filters, a lookup table), ``b`` (bias), ``W_input`` /
``W_recur`` / ``b_recur`` for recurrent layers, ``gamma`` / ``beta`` for
batch normalisation (``running_mean`` / ``running_var`` keep their names),
``slopes`` for PReLU; anything else keeps its torch name.
"""

import copy

from ..version import __version__


class Layer:
    """One node of a net, for inspection (an entry of ``net.layers``).

    Attributes
    ----------
    index : int
        The node's number (the ``#`` column of ``repr(net)``).
    type : str
        What it is: 'input', 'conv_pool', 'fc', 'lstm', 'merge', ...
    call : str
        The builder call that added it.
    config : dict
        What it was built from (plain data).
    name, inputs
        Its key in ``net.module.layers`` (``'n3'``) and those of the nodes feeding it.
    in_shapes, out_shape
        Row shapes in and out, without the batch axis.
    module : torch.nn.Module or None
        Its module in ``net.module.layers`` (None for channel inputs).
    """

    def __init__(self, graph, node):
        self.index, self.type, self.call = node.id, node.op, node.call
        self.name, self.pathway = node.key, node.pathway
        self.config = copy.deepcopy(node.args)
        self.inputs = [f'n{i}' for i in node.inputs]     # the names of the nodes feeding it
        self.in_shapes = [graph.nodes[i].out_shape for i in node.inputs]
        self.out_shape = node.out_shape
        self.module = graph.module_of(node)
        self._names = node.spec.param_names

    @property
    def params(self):
        """``{short name: tensor}`` of the live parameters and buffers (detached
        views: they follow training, and writing to them changes the net)."""
        if self.module is None:
            return {}
        return {self._names.get(k, k): v.detach()
                for k, v in self.module.state_dict(keep_vars=True).items()}

    @property
    def W(self):  # neon's name
        """The weights (filters, table) or None."""
        return self.params.get('W')

    @property
    def b(self):
        """The bias or None."""
        return self.params.get('b')

    def __repr__(self):
        params = ', '.join(f'{k} {tuple(v.shape)}' for k, v in self.params.items())
        shapes = ' + '.join(map(str, self.in_shapes)) or 'data'
        return (f'<Layer {self.index} {self.type} ({self.call}): {shapes} -> '
                f'{self.out_shape}{"; " + params if params else ""}>')


def describe(net, get_weights=False):
    """The plain-data description of ``net``; see ``NN.get_description``."""
    layers = []
    for layer in net.layers:
        entry = {'name': layer.name, 'type': layer.type, 'call': layer.call,
                 'config': layer.config, 'inputs': layer.inputs, 'in_shape': layer.in_shapes,
                 'out_shape': layer.out_shape, 'pathway': layer.pathway}
        if get_weights:
            entry['params'] = {k: v.cpu().numpy().copy() for k, v in layer.params.items()}
        layers.append(entry)
    config = {'name': net.name, 'channel': net.channel, 'num_classes': net.num_classes,
              'batch_size': net.batch_size, 'activation': net.activation_name,
              'seed': net.seed, 'initialization': net.initialization, 'layers': layers}
    return {'model': {'type': 'pydnn2.NN', 'config': config},
            'calls': net.calls,
            'preprocessor': type(net.preprocessor).__name__,
            'pydnn2_version': __version__}
