"""Drop-in replacements for PyG conv layers on gnnkit's sparse ops (one layer per file)."""
from .gcn_conv import GCNConv, gcn_norm
from .lstm_aggr import LSTMAggregation
from .sage_conv import SAGEConv
from .gat_conv import GATConv
from .gatv2_conv import GATv2Conv
from .gin_conv import GINConv
from .gine_conv import GINEConv

__all__ = ["GCNConv", "gcn_norm", "SAGEConv", "GATConv", "GATv2Conv", "GINConv", "GINEConv", "LSTMAggregation"]
