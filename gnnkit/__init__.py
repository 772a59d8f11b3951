"""gnnkit: a graph-learning toolkit for PyTorch Geometric users.

* :mod:`gnnkit.ops` — a CSR graph object and sparse ops with autograd
  (Triton on CUDA, plain torch on CPU);
* :mod:`gnnkit.nn` — drop-in replacements for PyG conv layers;
* :mod:`gnnkit.data` — offline datasets by name through PyG's/OGB's classes.
"""
__version__ = "0.1.0"
