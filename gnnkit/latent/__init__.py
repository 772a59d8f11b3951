"""Discrete latents for graphs: quantizers (Gumbel-softmax, VQ, FSQ), graph VQ-VAEs with one and two
levels, a learned autoregressive prior that samples graphs, generation datasets and metrics.

See docs/latent.md for the math (the lectures' equations) and the measured generation table.
"""
from ._common import QuantizerCollapseWarning, QuantizerOutput, QuantizerStats
from .fsq import FSQ
from .gumbel import GumbelQuantizer, TemperatureSchedule, gumbel_noise
from .io import allow_data_loading
from .order import bfs_order, canonical
from .prior import CodePrior
from .vq import VectorQuantizer, kmeans, rotate_to
from .vqvae import Codes, GraphVQVAE, HierarchicalGraphVQVAE, VQVAEOutput

allow_data_loading()  # the sample files (gnnkit vq sample) hold PyG Data: torch.load's default reads them

__all__ = [
    "GumbelQuantizer", "TemperatureSchedule", "gumbel_noise", "VectorQuantizer", "FSQ", "kmeans", "rotate_to",
    "QuantizerOutput", "QuantizerStats", "QuantizerCollapseWarning", "GraphVQVAE", "HierarchicalGraphVQVAE",
    "VQVAEOutput", "Codes", "CodePrior", "bfs_order", "canonical",
]
