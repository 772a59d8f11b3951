"""Drop-in replacements for PyG conv layers on gnnkit's sparse ops (one layer per file)."""
from .gcn_conv import GCNConv, gcn_norm

__all__ = ["GCNConv", "gcn_norm"]
