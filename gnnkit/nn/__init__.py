"""Drop-in replacements for PyG conv layers on gnnkit's sparse ops (one layer per file)."""
from .gcn_conv import GCNConv, gcn_norm
from .lstm_aggr import LSTMAggregation
from .sage_conv import SAGEConv
from .gat_conv import GATConv

__all__ = ["GCNConv", "gcn_norm", "SAGEConv", "GATConv", "LSTMAggregation"]
