"""Building the network: the graph, one spec per layer type, the builder methods, the
torch modules, initialisers, description and size.

- :mod:`.graph`: :class:`Graph` (nodes, pathways, recorded calls, the plan);
- :mod:`.layers`: the layer specs, one class per layer type;
- :mod:`.builder`, :mod:`.builder_neon`, :mod:`.recording`: the ``add_*`` methods;
- :mod:`.modules`: the torch modules and :class:`GraphModule`;
- :mod:`.activations`, :mod:`.initializers`: nonlinearities and weight initialisers;
- :mod:`.description`, :mod:`.size`, :mod:`.memory`: ``net.layers``,
  ``get_description``, ``net_size`` and the memory model.
"""

from .builder import Builder, Pathway, input_spec
from .graph import Graph, Node
from .layers import Cost, Incoming, LayerSpec
from .modules import GraphModule
from .recording import RerunWarning

__all__ = ['Graph', 'Node', 'Builder', 'Pathway', 'input_spec', 'LayerSpec', 'Incoming',
           'Cost', 'GraphModule', 'RerunWarning']
