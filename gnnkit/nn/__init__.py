"""Drop-in replacements for PyG conv layers on gnnkit's sparse ops (one layer per file),
plus the building blocks and ready models of the lectures."""
from .augment import AddKHopEdges, add_k_hop_edges
from .edge_gcn_conv import EdgeGCNConv
from .gat_conv import GATConv
from .gatv2_conv import GATv2Conv
from .gcn_conv import GCNConv, gcn_norm
from .gin_conv import GINConv
from .gine_conv import GINEConv
from .graph_transformer_conv import GraphTransformerConv
from .idgnn_conv import IDGNN, IDGNNConv, cycle_count_features, ego_networks
from .lstm_aggr import LSTMAggregation
from .models import GAT, GCN, GIN, GraphSAGE
from .mpnn_conv import MPNNConv
from .pgnn_conv import PGNN, PGNNConv, bourgain_anchor_sets, closest_anchors, shortest_path_scores
from .readout import EdgeReadout, GatedReadout, global_add_pool, global_max_pool, global_mean_pool
from .sage_conv import SAGEConv
from .skip import JumpingKnowledge, Residual
from .virtual_node import VirtualNode

__all__ = [
    "GCNConv", "gcn_norm", "SAGEConv", "GATConv", "GATv2Conv", "GINConv", "GINEConv", "EdgeGCNConv", "MPNNConv",
    "IDGNNConv", "IDGNN", "cycle_count_features", "ego_networks", "PGNNConv", "PGNN", "bourgain_anchor_sets",
    "closest_anchors", "shortest_path_scores", "GraphTransformerConv",
    "LSTMAggregation", "VirtualNode", "Residual", "JumpingKnowledge", "add_k_hop_edges", "AddKHopEdges",
    "global_add_pool", "global_mean_pool", "global_max_pool", "GatedReadout", "EdgeReadout",
    "GCN", "GraphSAGE", "GAT", "GIN",
]
