"""Triton kernels for gnnkit's sparse ops, imported as ``gnnkit.kernels``.

One module per op (``kernels/<op>.py``): ``@triton.jit`` kernels and their
launchers, nothing else (no autograd, no nn, no PyG).  The autograd Functions,
the pure-torch references and the dispatch live in ``gnnkit.ops``; layers never
import this package.  Importing it does not import triton: each op module does,
and ``gnnkit.ops`` imports an op module only when it is about to launch it.
"""
