"""OGB benchmark runners: one loop for graph-, node- and link-level datasets on OGB's official splits and
``Evaluator``, with gnnkit's layers beside PyG's (``gnnkit ogb`` on the command line)."""
from .models import LIBS, MOL_MODELS, NODE_MODELS, MolGNN, NodeGNN, PyGEdgeGCNConv, PyGVirtualNode
from .runner import ResumeError, format_table, run, summarize
from .sampling import TorchNeighborSampler, native_sampler_available, neighbor_loader
from .tasks import LEADERBOARD, PRESETS, OGBConfig, family, make_task, models_for

__all__ = [
    "OGBConfig", "run", "format_table", "summarize", "ResumeError", "make_task", "family", "models_for",
    "PRESETS", "LEADERBOARD", "MolGNN", "NodeGNN", "PyGEdgeGCNConv", "PyGVirtualNode", "LIBS", "MOL_MODELS",
    "NODE_MODELS", "neighbor_loader", "TorchNeighborSampler", "native_sampler_available",
]
