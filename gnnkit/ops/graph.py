"""The graph structure every op runs on: CSR by destination, built once.

A :class:`Graph` is made from any adjacency form PyG layers accept:

* ``edge_index`` — an integer tensor ``[2, E]`` with row 0 = source and row 1 =
  destination (PyG's ``flow="source_to_target"``), int32 or int64, also
  ``torch_geometric.EdgeIndex``;
* ``adj_t`` — a ``torch.sparse`` COO or CSR matrix of shape
  ``[num_dst, num_src]`` whose entry ``(i, j)`` is the edge ``j -> i``
  (PyG's ``adj_t`` convention); its values become edge weights;
* ``torch_sparse.SparseTensor`` in the same ``adj_t`` convention, when
  torch-sparse is installed.

It holds ``rowptr``/``col`` (CSR by destination, sources sorted within a
row so gathers walk memory in order), ``row`` (the destination of each CSR
slot), ``perm`` (CSR slot -> input edge id, so per-edge tensors given in input
order can be moved to CSR order and back), degrees, and lazily the transpose
(CSR by source) that backward passes need.  The sort is stable, so duplicate
edges keep their input order and every op is deterministic.

:func:`as_graph` validates the input once and caches the result keyed on the
identity and version of the ``edge_index`` tensor, so a layer called every
epoch with the same ``edge_index`` does not sort again.
"""
from __future__ import annotations

import operator
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, Hashable, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.typing import Size  # (num_src, num_dst), PyG's order; either may be None

from ._backend import use_triton
from ._custom_op import custom_op, transforms_active

try:  # optional peer
    from torch_sparse import SparseTensor  # type: ignore
except Exception:  # pragma: no cover - depends on the environment
    SparseTensor = None  # type: ignore


def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


# torch's CPU sort switches to a radix sort at this length; below it a stable sort of E int64 keys costs
# ~50 ns per key (E = 10k: ~0.5 ms, E = 32k: ~1.9 ms on 2 cores), ~8x numpy's 16-bit radix passes
_TORCH_RADIX_MIN = 32768


def _numpy_path(t: Tensor, bound: int) -> bool:
    """Whether keys ``t`` (below ``bound``) are sorted on the host by :func:`_radix_perm`: CPU, outside a
    compiled region, 1 to 32,767 keys (from 32,768 on torch's own sort is a radix sort)."""
    return _on_host(t) and 0 < t.numel() < _TORCH_RADIX_MIN and bound <= 1 << 48  # (not a fake tensor)


# up to this many values the CPU checks of an edge_index (its fingerprint, its id range) run in numpy: ~2x faster
# than torch's kernels there, whose per-call cost dominates small tensors (a MUTAG batch of 32 graphs, 2,580
# values: fingerprint 24 vs 46 us, range 12 vs 29 us)
_FP_HOST_MAX = 1 << 17


def _on_host(t: Tensor) -> bool:
    """A plain CPU tensor outside a compiled region whose storage numpy can read: not a functorch-wrapped or
    functional tensor (``torch.func`` transforms), whose storage is not allocated (numpy would read garbage)."""
    return (not _is_compiling() and type(t) is Tensor and t.device.type == "cpu"
            and not torch._C._functorch.is_functorch_wrapped_tensor(t) and not torch._is_functional_tensor(t))


def _radix_perm(keys):
    """The stable sort permutation (numpy int64) by ``keys``, a list of ``(array, bound)`` from the least to
    the most significant key: LSD radix passes over 16-bit digits, each numpy's stable ``uint16`` argsort
    (a counting sort), one pass per 16 bits of each bound."""
    import numpy as np
    perm = None
    for k, bound in keys:
        shift = 0
        while True:
            digit = k if perm is None else k[perm]
            if bound > 1 << 16:  # keys of more than 16 bits: this pass's digit
                digit = (digit >> shift) & 0xFFFF
            p = np.argsort(digit.astype(np.uint16), kind="stable")
            perm = p if perm is None else perm[p]
            shift += 16
            if not bound - 1 >> shift:
                break
    return perm


def _csr_numpy(keys, rows, takes, n: int):
    """On the host: the stable sort by ``keys`` (see :func:`_radix_perm`; the most significant key is the
    row, ``rows`` numpy ``[E]`` with values in ``[0, n)``), returned as the ``[n + 1]`` row offsets, the
    ``takes`` arrays in sorted order and the permutation, int64 tensors."""
    import numpy as np
    perm = _radix_perm(keys)
    taken = [torch.from_numpy(a[perm]) for a in takes]
    rowptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=rowptr[1:])  # counts need no order
    return torch.from_numpy(rowptr), taken, torch.from_numpy(perm)


def stable_argsort(key: Tensor, bound: int) -> Tensor:
    """``torch.sort(key, stable=True).indices`` for 1-D integer keys in ``[0, bound)``.

    On CPU below torch's radix-sort length (and outside a compiled region) it is an LSD radix sort of
    16-bit digits by numpy's stable ``uint16`` argsort (a counting sort; one pass per 16 bits of
    ``bound``): the same permutation in O(E) whatever the input order.  On shuffled keys it is ~7x
    faster at the sizes a mini-batch has (E = 10k, 23-bit keys: 67 vs 500 us; E = 32k: 246 vs 1870 us);
    on keys already in order torch's sort is faster (Cora's CSR key: 59 vs 88 us), on the transpose's key
    of the same graph much slower (446 vs 34 us).  Elsewhere ``torch.sort``."""
    if key.dim() != 1 or key.is_floating_point() or key.is_complex() or key.dtype == torch.bool:
        raise ValueError(f"stable_argsort: key must be a 1-D integer tensor, got {key.dtype} of shape "
                         f"{list(key.shape)}; pass key.reshape(-1).long()")
    if bound < 1:
        raise ValueError(f"stable_argsort: bound must be >= 1 (keys lie in [0, bound)), got {bound}")
    if not _numpy_path(key, bound):
        return torch.sort(key, stable=True).indices
    k = key.detach().long().numpy()
    if k.min() < 0 or k.max() >= bound:  # outside the promised range: torch's sort, which takes any key
        return torch.sort(key, stable=True).indices
    return torch.from_numpy(_radix_perm([(k, bound)]))


def rowptr_of(index: Tensor, n: int) -> Tensor:
    """``[n + 1]`` int64 offsets of the runs of ``index`` (sorted, values in ``[0, n)``).

    A count and a running sum, O(E); a binary search per node, O(n log E), where that is fewer steps
    (many edges per node: at n = 4k, E = 2.1M 0.36 vs 1.4 ms; at n = 169k, E = 1.2M 5.2 vs 1.0 ms) and
    in a compiled region (a count's output length would depend on the data) or off the CPU.  The callers
    pass validated rows: nothing here checks the order or the range (that would cost a pass and a sync)."""
    if index.dim() != 1 or index.is_floating_point() or index.is_complex() or index.dtype == torch.bool or n < 0:
        raise ValueError(f"rowptr_of: index must be a 1-D integer tensor and n >= 0, got {index.dtype} of shape "
                         f"{list(index.shape)} and n={n}")
    e = index.numel()
    # (on a GPU a count would wait for the largest id to size its output: searchsorted needs no host sync)
    if _is_compiling() or index.device.type != "cpu" or 2 * (n + 1) * max(e, 1).bit_length() < e:
        return torch.searchsorted(index, torch.arange(n + 1, device=index.device))
    out = torch.zeros(n + 1, dtype=torch.int64, device=index.device)
    torch.cumsum(torch.bincount(index, minlength=n), 0, out=out[1:])
    return out


def _merge_self_loops(g: "Graph", n: int) -> Optional[Tuple["Graph", Tensor, Tensor]]:
    """:meth:`Graph.remaining_self_loops` by merging, in numpy; None when a row's sources are not in order (the
    caller sorts instead).  The kept slots keep their order; a loop ``i`` goes after row ``i``'s kept sources
    below ``i`` and before those above it, which is where ``from_coo``'s stable sort by ``(dst, src)`` of the
    kept edges then the loops puts it, so the two CSRs are equal."""
    import numpy as np
    c, r = g.col.numpy(), g.row.numpy()
    is_loop = c == r
    kept = np.flatnonzero(~is_loop)
    kc, kr = c[kept], r[kept]
    if kc.size > 1 and not ((kr[1:] != kr[:-1]) | (kc[1:] >= kc[:-1])).all():
        return None  # a row's sources out of order (e.g. a Graph from an unsorted CSR)
    loops = np.flatnonzero(is_loop)
    p = None if g.perm is None else g.perm.numpy()
    keep = kept if p is None else p[kept]
    loop_edge = np.full(n, -1, dtype=np.int64)
    np.maximum.at(loop_edge, r[loops], loops if p is None else p[loops])  # the last self-loop edge wins
    K = kc.size
    nodes = np.arange(n, dtype=np.int64)
    rp = g.rowptr.numpy()
    kept_ptr = rp - np.searchsorted(loops, rp)  # the row offsets less the loops before each row
    # kept slot j: after the loops of the rows before its own (kr of them) and its own row's loop if it is above
    kept_pos = np.arange(K, dtype=np.int64) + kr + (kc > kr)
    loop_pos = kept_ptr[:-1] + np.bincount(kr[kc < kr], minlength=n) + nodes
    new_col, new_row, perm = (np.empty(K + n, dtype=np.int64) for _ in range(3))
    new_col[kept_pos], new_col[loop_pos] = kc, nodes
    new_row[kept_pos], new_row[loop_pos] = kr, nodes
    perm[kept_pos], perm[loop_pos] = np.arange(K, dtype=np.int64), K + nodes
    rowptr = kept_ptr + np.arange(n + 1, dtype=np.int64)
    graph = Graph(torch.from_numpy(rowptr), torch.from_numpy(new_col), torch.from_numpy(new_row),
                  None if K == 0 else torch.from_numpy(perm), n, n)
    return graph, torch.from_numpy(np.ascontiguousarray(keep, dtype=np.int64)), torch.from_numpy(loop_edge)


def _sorted_self_loops(src: Tensor, dst: Tensor, n: int, ids: Optional[Tensor]
                       ) -> Tuple["Graph", Tensor, Tensor]:
    """The kept ``src -> dst`` pairs (non-loops, in the given order) then the loops ``0..n-1``, sorted by
    :meth:`Graph.from_coo`; ``ids`` maps a pair's position to its input edge id (None: the position itself)."""
    is_loop = src == dst
    kept = (~is_loop).nonzero().view(-1)
    loops = is_loop.nonzero().view(-1)
    keep = kept if ids is None else ids.index_select(0, kept)
    loop_ids = loops if ids is None else ids.index_select(0, loops)
    loop_edge = torch.full((n,), -1, dtype=torch.long, device=src.device)
    # the last self-loop edge of a node wins (deterministic; PyG's assignment picks one of them)
    loop_edge.scatter_reduce_(0, dst.index_select(0, loops), loop_ids, "amax")
    nodes = torch.arange(n, device=src.device)
    if _is_compiling():
        # the same pairs picked from [pairs, loops] by one nonzero: their count is one unbacked size u, not the sum
        # "u + n" of a cat, which inductor's backward of a second layer could not bind ("For u2 + n, expected [u2]
        # to have been codegen-ed": a two-layer GCN on a plain edge_index failed in backward)
        sel = torch.cat([~is_loop, torch.ones(n, dtype=torch.bool, device=src.device)]).nonzero().view(-1)
        torch._check(sel.numel() >= n)  # every loop is picked
        graph = Graph.from_coo(torch.cat([src, nodes]).index_select(0, sel),
                               torch.cat([dst, nodes]).index_select(0, sel), n, n, check=False)
        return graph, keep, loop_edge
    graph = Graph.from_coo(torch.cat([src.index_select(0, kept), nodes]), torch.cat([dst.index_select(0, kept), nodes]),
                           n, n, check=False)
    return graph, keep, loop_edge


class PermuteRows(torch.autograd.Function):
    """``t.index_select(0, index)`` for a permutation ``index`` whose inverse is ``inverse``: the backward gathers
    the gradient back (``grad.index_select(0, inverse)``) where ``index_select``'s own backward scatter-adds it
    into zeros — the same values (each row receives exactly one), 3-5x the time on CPU (an [E, 8] float32
    gradient at E = 2M: 211 ms against 45 ms; used on CPU only, :func:`_permute_with_gather`).  The backward is
    itself differentiable (a gather)."""

    @staticmethod
    def forward(ctx, t: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return t.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


def _permute_with_gather(t: Tensor) -> bool:
    """Reorder ``t`` through :class:`PermuteRows`: a CPU tensor (on an H200, ``index_select``'s backward, an
    index_add of a permutation, was the faster one: edge softmax forward+backward at E = 1.17M, H = 8, 4.4 ms
    against 5.7 ms, ``benchmarks/results/cuda_h200/edge_order_backward_cuda.json``) that carries a gradient, in
    eager mode without a transform (a compiled region, functorch or forward-mode AD keep ``index_select``,
    which they all know), outside inference mode (which records nothing, even under ``enable_grad()``; saving
    would fail there)."""
    return (t.requires_grad and t.device.type == "cpu" and torch.is_grad_enabled()
            and not transforms_active()  # (compiling: dynamo cannot
            and not torch.is_inference_mode_enabled())  # trace the inference-mode check, so that comes last)


class Graph:
    """CSR-by-destination structure of a (possibly bipartite) directed graph.

    Attributes:
        rowptr: ``[num_dst + 1]`` int64, slot range of each destination.
        col: ``[E]`` int64, the source node of each CSR slot.
        row: ``[E]`` int64, the destination node of each CSR slot.
        perm: ``[E]`` int64 with ``perm[k]`` = input edge id stored in slot ``k``,
            or ``None`` when the input was already in CSR order.
        num_src, num_dst: node counts of the two sides (equal for plain graphs).

    Everything derived from the structure (the transpose, the SDDMM pattern, a layer's
    self-loop graph or normalised weights) is built once, on first use, and kept in the
    graph itself (:meth:`derived`): one cache, keyed by what it is, dying with the graph.
    A ``Graph`` can be passed to every gnnkit layer in place of ``edge_index``; under
    ``torch.compile`` a graph built outside the compiled region keeps the derived state the
    compiled code builds, which later calls read instead of rebuilding it (:meth:`derived`).
    """

    __slots__ = ("rowptr", "col", "row", "perm", "num_src", "num_dst", "_derived", "_derived_nograd", "__weakref__")

    def __init__(self, rowptr: Tensor, col: Tensor, row: Tensor, perm: Optional[Tensor],
                 num_src: int, num_dst: int):
        refuse_jit_trace("Graph")
        self.rowptr = rowptr
        self.col = col
        self.row = row
        self.perm = perm
        self.num_src = int(num_src)
        self.num_dst = int(num_dst)
        self._derived: Dict[Hashable, Any] = {}  # entries any call may use
        self._derived_nograd: Dict[Hashable, Any] = {}  # built with gradients off: read only then

    def __getstate__(self) -> Dict[str, Any]:
        """The structure and its derived state, without the entries keyed on a live tensor (a weak
        reference cannot be pickled; they are rebuilt on use): ``torch.save`` of a model that keeps a
        ``Graph`` (``GCNConv(cached=True)``) works."""
        state = {k: getattr(self, k) for k in self.__slots__ if k != "__weakref__"}
        state["_derived"] = {k: v for k, v in self._derived.items() if k != "values_t"}
        state["_derived_nograd"] = {k: v for k, v in self._derived_nograd.items() if k != "values_t"}
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_coo(cls, src: Tensor, dst: Tensor, num_src: int, num_dst: int, *, check: bool = True) -> "Graph":
        """Sort the ``src -> dst`` pairs (two 1-D tensors of node ids) into CSR by destination.

        ``check``: validate the arguments first (1-D integer tensors of one length, ids in ``[0, num_src)`` and
        ``[0, num_dst)``: one pass over the ids), raising an error that names the argument; pass ``check=False``
        for pairs already validated (as ``torch.sparse_csr_tensor``'s ``check_invariants``): an id out of range
        then builds a graph whose products read memory outside the features."""
        if check:
            _check_pairs(src, dst, num_src, num_dst, "Graph.from_coo")
        # a graph holds indices only: built as normal tensors, so a graph made in an eval or preprocessing
        # step under inference_mode can also train
        if not _is_compiling() and torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                return cls.from_coo(src.clone(), dst.clone(), num_src, num_dst, check=False)
        src = src.long()
        dst = dst.long()
        if _numpy_path(src, max(num_src, num_dst, 1)):  # small, on the host: numpy's radix passes (sort, offsets)
            s, d = src.detach().reshape(-1).numpy(), dst.detach().reshape(-1).numpy()
            rowptr, (row, col), perm = _csr_numpy([(s, max(num_src, 1)), (d, max(num_dst, 1))], d, (d, s), num_dst)
            p = perm.numpy()
            return cls(rowptr, col, row, None if (p[1:] > p[:-1]).all() else perm, num_src, num_dst)
        key = dst * max(num_src, 1) + src
        perm = stable_argsort(key, max(num_src, 1) * max(num_dst, 1))
        row = dst[perm]
        col = src[perm]
        rowptr = rowptr_of(row, num_dst)
        if not _is_compiling() and perm.numel() > 0 and bool((perm[1:] > perm[:-1]).all()):
            perm = None  # already in CSR order (sorted by destination): per-edge tensors need no gather
        return cls(rowptr, col, row, perm, num_src, num_dst)

    @classmethod
    def from_csr(cls, rowptr: Tensor, col: Tensor, num_src: int, num_dst: int, *, check: bool = True) -> "Graph":
        """The graph of a CSR by destination: ``rowptr`` ``[num_dst + 1]`` (slot range of each destination),
        ``col`` ``[E]`` (the source of each slot); both are copied.

        ``check``: validate them first (integer tensors, ``rowptr`` starting at 0, never decreasing, ending at
        ``E``, source ids in ``[0, num_src)``), raising an error that names the argument (under ``torch.compile``:
        the source ids only, as an assertion in the graph); ``check=False`` for a structure already validated
        (:meth:`from_coo`)."""
        if check:
            for arg, t in (("rowptr", rowptr), ("col", col)):
                if not isinstance(t, Tensor) or t.dim() != 1:
                    raise ValueError(f"Graph.from_csr: {arg} must be a 1-D tensor, got "
                                     f"{list(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
                check_id_dtype(t, arg, "Graph.from_csr", "indices")
            _check_count(num_src, "num_src", "Graph.from_csr")
            _check_count(num_dst, "num_dst", "Graph.from_csr")
            _check_csr(rowptr, col, num_src, num_dst, "Graph.from_csr", matrix=False)
        if not _is_compiling() and torch.is_inference_mode_enabled():  # as from_coo: normal tensors
            with torch.inference_mode(False):  # (the copies below are normal tensors then)
                return cls.from_csr(rowptr, col, num_src, num_dst, check=False)
        # own copies: a sparse matrix's index tensors stay the caller's, and an edit of them (which bumps no
        # version the matrix carries) must not change a Graph whose transpose was built from the old ones
        rowptr = rowptr.to(torch.long, copy=True)
        col = col.to(torch.long, copy=True)
        deg = rowptr[1:] - rowptr[:-1]
        row = torch.repeat_interleave(torch.arange(num_dst, device=col.device), deg,
                                      output_size=col.numel())
        return cls(rowptr, col, row, None, num_src, num_dst)

    def remaining_self_loops(self) -> Tuple["Graph", Tensor, Tensor]:
        """The structure of PyG's ``add_remaining_self_loops`` on this (square) graph: its self-loops dropped and
        one loop per node appended.  Returns ``(graph, keep, loop_edge)``: the new graph, equal to
        ``Graph.from_coo`` of the kept edges (in this graph's slot order, which lists duplicates of an edge in
        input order) followed by the loops ``0..n-1``; ``keep``, the input-edge ids of the kept edges in that
        order; ``loop_edge``, for each node the input id of its last input self-loop (-1: none).

        On the host (CPU, outside a compiled region), when each row's sources are in order (every graph
        :meth:`from_coo` builds), the new CSR is merged from this one in O(E) (each loop goes between its row's
        sources below and above it) instead of sorted again (1 thread: 280 -> 171 us on a MUTAG batch of 32 graphs,
        563 -> 353 us on PROTEINS', 23.8 -> 9.3 ms at E = 200k).  Elsewhere the kept edges and loops are sorted
        by :meth:`from_coo`."""
        n = self.num_dst
        if self.num_src != n:
            raise ValueError(f"remaining_self_loops needs a square graph, got num_src={self.num_src}, num_dst={n}")
        if not _is_compiling() and torch.is_inference_mode_enabled():  # as from_coo: normal tensors
            with torch.inference_mode(False):
                return self.remaining_self_loops()
        if _on_host(self.col) and _on_host(self.rowptr) and n > 0 and (self.perm is None or _on_host(self.perm)):
            merged = _merge_self_loops(self, n)
            if merged is not None:
                return merged
        return _sorted_self_loops(self.col, self.row, n, self.perm)

    @classmethod
    def with_remaining_self_loops(cls, src: Tensor, dst: Tensor, num_nodes: int, *, check: bool = True
                                  ) -> Tuple["Graph", Tensor, Tensor]:
        """:meth:`remaining_self_loops` of the ``src -> dst`` pairs on ``num_nodes`` nodes, read in their own order
        and sorted once (no CSR of the input itself is built): ``keep`` holds the ids of the kept pairs in input
        order.  ``check``: as in :meth:`from_coo`."""
        if check:
            _check_pairs(src, dst, num_nodes, num_nodes, "Graph.with_remaining_self_loops", "num_nodes")
        return _sorted_self_loops(src.long(), dst.long(), num_nodes, None)

    @classmethod
    def build(cls, edge_index: Any, num_nodes: Optional[int] = None, size: Size = None) -> "Graph":
        """The graph of ``edge_index`` (or a sparse ``adj_t``), validated, for passing to layers in
        place of ``edge_index`` (for example into a ``torch.compile``-d model).  A sparse matrix's
        values are not part of the structure: pass them as ``edge_weight``."""
        return as_graph(edge_index, num_nodes=num_nodes, size=size)[0]

    # ------------------------------------------------------------------ derived state
    def derived(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` once per ``key``, kept in this graph.

        An entry built under ``torch.inference_mode`` holds inference tensors, which a later training
        step could not use (autograd cannot save them); a compiled region cannot ask whether it runs
        under inference mode.  So entries built under inference mode in eager mode, or with gradients
        off under ``torch.compile``, go to a second store, read only by such calls; everything else
        (eager calls outside inference mode, compiled calls with gradients on) goes to the main
        store, which every call reads.

        Under ``torch.compile`` the store is a side effect the compiled code replays after it runs:
        the first compiled call builds the entry, the next one is compiled once more and reads it, so
        a ``Graph`` that no eager call has touched is not rebuilt on every compiled call, in training
        or inference.  Dynamo drops stores made inside an ``autograd.Function``'s forward (where
        gradients are off too); what a backward needs is therefore fetched before ``Function.apply``
        (:meth:`prepare_backward`), with gradients on, into the main store."""
        compiling = torch.compiler.is_compiling()
        # an autograd Function's forward runs with gradients off: eager mode asks for inference mode instead
        nograd = not torch.is_grad_enabled() if compiling else torch.is_inference_mode_enabled()
        hit = self._derived.get(key)
        if hit is None and nograd:
            hit = self._derived_nograd.get(key)
        if hit is None:
            hit = build()
            if nograd:
                self._derived_nograd[key] = hit
            else:
                self._derived[key] = hit
                if not compiling:  # the main entry serves every call: the inference-mode twin goes
                    self._derived_nograd.pop(key, None)
        return hit

    def prepare_backward(self, *inputs: Any, transpose: bool = True, sddmm: bool = False,
                         slot_ids: bool = False, transpose_rows: bool = False) -> None:
        """Build what a backward through this graph reads — the transpose, and as asked the SDDMM
        pattern, the slot ids and the transposed CSR's slot rows — when one of ``inputs`` (tensors; anything
        else is ignored) will get a gradient: called by the ops before ``Function.apply``, so under
        ``torch.compile`` the entries are kept (see :meth:`derived`).  Eager mode needs no call: the forward
        builds and keeps them."""
        if not (torch.compiler.is_compiling() and torch.is_grad_enabled()
                and any(isinstance(t, Tensor) and t.requires_grad for t in inputs)):
            return
        if transpose:
            self.transpose()
        if sddmm and not use_triton("sddmm", self.col):  # the Triton kernel needs no pattern
            self.sddmm_pattern()
        if slot_ids:
            self.slot_ids()
        if transpose_rows:
            self.transpose_rows()

    def keep(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key`` whatever the inference mode — only for entries that hold no tensor
        autograd could meet (the Triton row plans, int64 indices built outside inference mode); never
        from a compiled region."""
        if not torch.compiler.is_compiling():
            self._derived[key] = value

    def derived_or_none(self, key: Hashable) -> Any:
        """The entry for ``key`` if it was built, else None (never builds)."""
        return self._derived.get(key)

    # ------------------------------------------------------------------ properties
    @property
    def num_edges(self) -> int:
        return self.col.numel()

    @property
    def device(self) -> torch.device:
        return self.col.device

    @property
    def is_square(self) -> bool:
        return self.num_src == self.num_dst

    def in_degree(self) -> Tensor:
        """Number of incoming edges of each destination node, ``[num_dst]`` int64."""
        return self.rowptr[1:] - self.rowptr[:-1]

    def out_degree(self) -> Tensor:
        """Number of outgoing edges of each source node, ``[num_src]`` int64."""
        rowptr_t = self.transpose()[0]
        return rowptr_t[1:] - rowptr_t[:-1]

    def transpose(self) -> Tuple[Tensor, Tensor, Tensor]:
        """``(rowptr_t, col_t, perm_t)``: CSR by source; ``col_t`` holds destinations and
        ``perm_t[k]`` is the CSR-by-destination slot of transposed slot ``k``.  Built once."""
        return self.derived("transpose", self._build_transpose)

    def _build_transpose(self) -> Tuple[Tensor, Tensor, Tensor]:
        # the slots are in (destination, source, input) order: a stable sort by source alone gives
        # (source, destination, input) order, as sorting the composite key would, on narrower keys
        if _numpy_path(self.col, max(self.num_src, 1)):
            c = self.col.detach().numpy()
            rowptr_t, (col_t,), perm_t = _csr_numpy([(c, max(self.num_src, 1))], c, (self.row.detach().numpy(),),
                                                    self.num_src)
            return rowptr_t, col_t, perm_t
        perm_t = stable_argsort(self.col, max(self.num_src, 1))
        rowptr_t = rowptr_of(self.col[perm_t], self.num_src)
        return rowptr_t, self.row[perm_t], perm_t

    def transpose_rows(self) -> Tensor:
        """The source of each transposed-CSR slot (the transposed CSR's :attr:`row`), ``[E]`` int64: what the
        torch path of a sum over the transposed CSR reads where it cannot use MKL (more than 64 values per slot)
        instead of rebuilding it from ``rowptr_t``.  Built once, when first asked for."""
        return self.derived("transpose_rows", lambda: self.col.index_select(0, self.transpose()[2]))

    def mean_scale(self) -> Tensor:
        """``[num_dst, 1]`` float32 ``1 / max(in_degree, 1)``: the backward of a mean aggregation scales the
        incoming gradient by it, then sums through the transposed CSR without weights — the products and sums
        of the edge-list path (:func:`gnnkit.ops.coo_sum`), so both give the same bits on any CPU (a weighted
        SpMM fuses the product into its sum on AVX-512, one rounding fewer).  Built once."""
        def build():
            return (1.0 / self.in_degree().clamp(min=1).to(torch.float32)).view(-1, 1)
        return self.derived("mean_scale", build)

    def values_t(self, value: Tensor) -> Tensor:
        """``value`` (per CSR slot, first dimension ``E``) in transposed-CSR slot order.

        Constant weights (no gradient, e.g. GCN's normalisation kept with the structure) are
        remembered against the tensor and its version, one entry; values that change every
        call (attention) are gathered each time."""
        perm_t = self.transpose()[2]
        if torch.compiler.is_compiling() or value.requires_grad or value.is_inference():
            return value.index_select(0, perm_t)
        # layers pass a fresh view (w.view(-1, 1)) of the kept weights each call: key on the base
        base = value if value._base is None else value._base
        bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(value.element_size())
        if not value.is_contiguous() or value.is_complex() or bits is None:
            return value.index_select(0, perm_t)
        layout = (tuple(value.shape), value.stride(), value.storage_offset(), value.dtype)
        # with the values' fingerprint: an edit that bypasses the version counter (w.data.mul_(3),
        # w.numpy()[:] = ...) must not hand the backward the old weights (~40 % of the gather's cost)
        fp = _fingerprint(value.detach().view(bits))
        hit = self._derived.get("values_t")
        if hit is not None and hit[0]() is base and hit[1] == value._version and hit[2] == layout and hit[3] == fp:
            return hit[4]
        vt = value.index_select(0, perm_t)
        if not torch.is_inference_mode_enabled():
            self._derived["values_t"] = (weakref.ref(base), value._version, layout, fp, vt)
        return vt

    def sddmm_pattern(self) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """``(rowptr, col, gather)`` of the CSR pattern without duplicate ``(row, col)`` slots
        (``torch.sparse.sampled_addmm`` rejects them) and the slot -> unique-slot map
        (``gather`` None: no duplicates, the pattern is the graph's own).  Built once.  Under
        ``torch.compile`` it is built by the op ``gnnkit::sddmm_pattern`` (the host sync stays
        inside it), whose ``gather`` is empty, not None, when there are no duplicates."""
        build = torch.ops.gnnkit.sddmm_pattern if torch.compiler.is_compiling() else unique_pattern
        return self.derived("sddmm_pattern", lambda: tuple(build(self.rowptr, self.col, self.row)))

    def slot_ids(self) -> Tensor:
        """``arange(E)``: the CSR slots as the "columns" of a destination-side gather's backward SpMM.  Built
        once."""
        return self.derived("slot_ids", lambda: torch.arange(self.num_edges, device=self.device))

    # ------------------------------------------------------------------ edge order
    def to_csr_order(self, edge_values: Tensor) -> Tensor:
        """Per-edge values in input order -> CSR slot order.  With a gradient to carry, its backward is the
        inverse gather (:class:`PermuteRows`), not ``index_select``'s scatter-add."""
        if self.perm is None:
            return edge_values
        if _permute_with_gather(edge_values):
            return PermuteRows.apply(edge_values, self.perm, self.derived("inv_perm", self._build_inv_perm))
        return edge_values.index_select(0, self.perm)

    def from_csr_order(self, slot_values: Tensor) -> Tensor:
        """Per-slot values in CSR order -> input edge order (the same backward as :meth:`to_csr_order`)."""
        if self.perm is None:
            return slot_values
        inv = self.derived("inv_perm", self._build_inv_perm)
        if _permute_with_gather(slot_values):
            return PermuteRows.apply(slot_values, inv, self.perm)
        return slot_values.index_select(0, inv)

    def _build_inv_perm(self) -> Tensor:
        inv = torch.empty_like(self.perm)
        inv[self.perm] = torch.arange(self.perm.numel(), device=self.perm.device)
        return inv

    def edge_index(self) -> Tensor:
        """``[2, E]`` (source, destination) in input edge order."""
        return torch.stack([self.from_csr_order(self.col), self.from_csr_order(self.row)])

    def __repr__(self) -> str:
        return (f"Graph(num_src={self.num_src}, num_dst={self.num_dst}, num_edges={self.num_edges}, "
                f"device={self.device})")


def check_op_inputs(op: str, graph: object, floating: Tuple[str, ...] = (), **tensors: Optional[Tensor]) -> None:
    """The public ops' first check: ``graph`` is a :class:`Graph` (not an ``edge_index``) and every given
    tensor (by argument name) is a tensor on the graph's device; those named in ``floating`` hold floating-point
    values (an integer product wraps round silently, a bool one is a logical or)."""
    if not isinstance(graph, Graph):
        raise ValueError(f"{op}: graph must be a gnnkit.ops.Graph, got {type(graph).__name__}; fix: "
                         "graph, _ = gnnkit.ops.as_graph(edge_index, num_nodes=N) (or Graph.build(...))")
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise ValueError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
        if t.device != graph.device:
            raise ValueError(f"{op}: {name} is on {t.device} but the graph is on {graph.device}; fix: "
                             f"{name}.to(graph.device) (or build the graph on {t.device})")
        if name in floating and not t.is_floating_point():
            raise ValueError(f"{op}: {name} must be a floating-point tensor, got {t.dtype}; fix: {name}.float()")


def check_rows(t: Optional[Tensor], n: int, name: str, what: str) -> None:
    """The one check of the CSR-slot tier: ``t`` has ``n`` rows (one per ``what`` of the graph)."""
    if t is not None and (t.dim() == 0 or t.size(0) != n):
        raise ValueError(f"{name} has {t.size(0) if t.dim() else 0} rows but the graph has {n} {what}; pass one row "
                         f"per {what.rstrip('s')}")


def unique_pattern(rowptr: Tensor, col: Tensor, row: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """See :meth:`Graph.sddmm_pattern` (one host sync: whether duplicates exist)."""
    E = col.numel()
    first = torch.ones(E, dtype=torch.bool, device=col.device)
    first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
    if bool(first.all()):
        return rowptr, col, None
    N = rowptr.numel() - 1
    return (rowptr_of(row[first], N).to(rowptr.dtype),
            col[first], torch.cumsum(first, 0) - 1)


@custom_op("gnnkit::sddmm_pattern")
def sddmm_pattern_op(rowptr: Tensor, col: Tensor, row: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`unique_pattern` as an op, for compiled code: ``gather`` is empty when the graph has no
    duplicate slots (and the pattern a copy of ``rowptr``, ``col``: an op's outputs may not alias its inputs)."""
    p_rowptr, p_col, gather = unique_pattern(rowptr, col, row)
    if gather is None:
        return p_rowptr.clone(), p_col.clone(), col.new_empty(0)
    return p_rowptr, p_col, gather


@sddmm_pattern_op.register_fake
def _(rowptr, col, row):
    ctx = torch.library.get_ctx()
    return rowptr.new_empty(rowptr.shape), col.new_empty(ctx.new_dynamic_size()), col.new_empty(ctx.new_dynamic_size())


# ---------------------------------------------------------------------- validation
_UNSIGNED_WIDE = (torch.uint16, torch.uint32, torch.uint64)


def check_id_dtype(t: Tensor, name: str, where: str = "", what: str = "node ids") -> None:
    """``t`` holds integer ids (int64, int32, ...; not uint16/32/64, for which torch has few kernels); the
    message names ``name`` (after ``where``, the function, when given)."""
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.dtype in _UNSIGNED_WIDE:
        raise ValueError(f"{where + ': ' if where else ''}{name} must hold integer {what} (int64, int32, ...), got "
                         f"dtype {t.dtype}; convert it with {name}.long()")


def _check_count(v: Any, name: str, where: str) -> None:
    """``v`` is a node count: a non-negative integer (Python, numpy or a one-element integer tensor)."""
    if isinstance(v, torch.SymInt):
        return
    if torch.compiler.is_compiling() and isinstance(v, int) and not isinstance(v, bool):
        # a traced size (x.size(0) under dynamic shapes reads as an int here): operator.index would specialise it,
        # a recompilation for every new graph size; checked as the graph runs instead
        torch._check(v >= 0)
        return
    try:
        ok = not isinstance(v, bool) and operator.index(v) >= 0
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{where}: {name} must be a non-negative int (a number of nodes), got {v!r}")


def _check_pairs(src: Any, dst: Any, num_src: Any, num_dst: Any, where: str, counts: str = "") -> None:
    """The checks of :meth:`Graph.from_coo` (``check=True``): two 1-D integer tensors of one length on one
    device, node counts that are non-negative ints, ids in range (eagerly one ``aminmax`` per side; under
    ``torch.compile`` an assertion in the graph).  ``counts``: the name of a single node-count argument (square
    graphs), used in the messages instead of ``num_src`` / ``num_dst``."""
    for arg, t in (("src", src), ("dst", dst)):
        if not isinstance(t, Tensor) or t.dim() != 1:
            raise ValueError(f"{where}: {arg} must be a 1-D tensor of node ids, got "
                             f"{list(t.shape) if isinstance(t, Tensor) else type(t).__name__}; for an edge_index "
                             "[2, E] pass edge_index[0] (sources) and edge_index[1] (destinations)")
        check_id_dtype(t, arg, where)
    if src.numel() != dst.numel():
        raise ValueError(f"{where}: src and dst must hold one id per edge each, got {src.numel()} and {dst.numel()}")
    if src.device != dst.device:
        raise ValueError(f"{where}: src is on {src.device} and dst on {dst.device}; move them to one device")
    sides = (("src", src, num_src, counts or "num_src"), ("dst", dst, num_dst, counts or "num_dst"))
    for _, _, size, size_name in sides[: 1 if counts else 2]:
        _check_count(size, size_name, where)
    for arg, t, size, size_name in sides:
        bad = _ids_out_of_range(t, size, f"{where}: {arg} holds a node id outside [0, {size_name})")
        if bad is not None:
            raise IndexError(f"{where}: {arg} holds node ids from {bad[0]} to {bad[1]}, outside "
                             f"[0, {size_name}={size}); fix {arg} or pass the right {size_name}")


def _ids_out_of_range(t: Tensor, size: Any, compiled_message: str) -> Optional[Tuple[int, int]]:
    """``(min, max)`` of the ids ``t`` when some lie outside ``[0, size)``, else None (one ``aminmax``); under
    ``torch.compile`` None, the range asserted in the graph with ``compiled_message`` (which must not format
    ``size``: a symbolic size would specialise the graph on it)."""
    if t.numel() == 0:
        return None
    if _is_compiling():
        torch._assert_async((t.min() >= 0) & (t.max() < size), compiled_message)
        return None
    lo, hi = (int(v) for v in torch.aminmax(t))
    return None if lo >= 0 and hi < size else (lo, hi)


def loop_edges(edge_index: Tensor, n_loops: int) -> Tuple[Tensor, Tensor]:
    """``(src, dst)`` int64: ``edge_index``'s edges with PyG's self-loops — the edges that are not loops, in
    input order, then one loop per node ``< n_loops`` (``add_self_loops`` after ``remove_self_loops``; for
    unweighted edges also ``add_remaining_self_loops``); ``n_loops`` 0: the edges as they are.  Always copies
    (never views of ``edge_index``): a backward reads them, and an in-place edit of ``edge_index`` after the
    forward must not change it, nor an inference-mode ``edge_index`` keep a training step from saving them."""
    if not n_loops:
        e = edge_index.to(torch.long, copy=True)
        return e[0], e[1]
    src, dst = edge_index[0].long(), edge_index[1].long()  # (scatter_reduce_ needs int64 ids)
    keep = src != dst
    if not bool(keep.all()):
        src, dst = src[keep], dst[keep]
    loops = torch.arange(n_loops, device=src.device)
    return torch.cat([src, loops]), torch.cat([dst, loops])


def edge_list_serves(edge_index: Any, x: Any, kernel: str) -> bool:
    """Whether an edge-list path (``coo_sum``, ``coo_gcn_sum``, ``coo_gat_attention``) may serve this call, as far
    as the inputs' kinds go: a plain int32/int64 ``[2, E]`` ``edge_index`` and a plain strided ``x`` on the CPU, in
    eager mode (no transform or dispatch mode), without autocast and with the torch backend for ``kernel``.
    Sizes and dtypes of ``x`` are each path's own.  Under ``torch.jit.trace`` it raises (:func:`refuse_jit_trace`)."""
    refuse_jit_trace("edge_index")
    return (type(edge_index) is Tensor and type(x) is Tensor and edge_index.dim() == 2 and edge_index.size(0) == 2
            and edge_index.dtype in (torch.int64, torch.int32) and edge_index.layout == torch.strided
            and x.layout == torch.strided and edge_index.device.type == "cpu" and x.device.type == "cpu"
            and not transforms_active() and not torch.is_autocast_enabled("cpu") and not use_triton(kernel, x))


def with_named_id_errors(run: Callable[[], Tensor], edge_index: Tensor, num_src: int, num_dst: int) -> Tensor:
    """``run()``, an edge-list path that indexes with ``edge_index``'s unchecked ids: an id out of range makes its
    ``index_select`` / ``index_add_`` raise, which becomes :func:`validate_edge_index`'s named error (the CSR
    path's), checked only then."""
    try:
        return run()
    except (IndexError, RuntimeError) as exc:
        failed = exc
    validate_edge_index(edge_index, num_src, num_dst)
    raise failed


def in_degree(dst: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """``[n]`` counts of ``dst`` in ``dtype`` on ``dst``'s device (not torch's defaults), by ``index_add_``, which
    raises on an id out of range (``bincount`` would first allocate up to it); exact up to 2^24 in float32."""
    ones = torch.ones(dst.numel(), dtype=dtype, device=dst.device)
    return torch.zeros(n, dtype=dtype, device=dst.device).index_add_(0, dst, ones)


def validate_edge_index(edge_index: Any, num_src: Optional[int], num_dst: Optional[int],
                        name: str = "edge_index") -> Tuple[int, int]:
    """Check an ``edge_index`` tensor and return ``(num_src, num_dst)``.

    Raises ValueError / IndexError that name ``name`` and say how to fix it.
    """
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [2, E] (or a sparse adjacency), "
                         f"got {type(edge_index).__name__}")
    check_id_dtype(edge_index, name)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        hint = f"; it looks transposed, pass {name}.t()" if edge_index.dim() == 2 and \
            edge_index.size(1) == 2 else ""
        raise ValueError(f"{name} must have shape [2, E], got {list(edge_index.shape)}{hint}")
    E = edge_index.size(1)
    if E == 0 or _is_compiling():
        if num_src is None or num_dst is None:
            if _is_compiling():
                raise ValueError(f"under torch.compile pass the number of nodes with {name}")
            num_src = num_src if num_src is not None else num_dst if num_dst is not None else 0
            num_dst = num_dst if num_dst is not None else num_src
        if E > 0:  # compiled: no data-dependent branch, one assertion in the graph (ids out of range would
            # otherwise read memory outside x)
            ok = (edge_index.min() >= 0) & (edge_index[0].max() < num_src) & (edge_index[1].max() < num_dst)
            # (no sizes in the message: formatting a symbolic size would specialise the compiled graph on it)
            torch._assert_async(ok, f"{name} holds a node id outside [0, num_nodes) (negative, or not below the "
                                    f"number of source / destination nodes); pass the right num_nodes/size or fix "
                                    f"{name}")
        return num_src, num_dst
    if E <= _FP_HOST_MAX and _on_host(edge_index):  # small, on the CPU: numpy's min/max (~2x faster there)
        a = edge_index.detach().numpy()
        (lo_src, lo_dst), (hi_src, hi_dst) = a.min(1).tolist(), a.max(1).tolist()
    else:
        mins, maxs = torch.aminmax(edge_index, dim=1)  # one pass, one host sync
        lo_src, lo_dst, hi_src, hi_dst = torch.cat([mins, maxs]).tolist()
    lo = min(lo_src, lo_dst)
    if lo < 0:
        raise IndexError(f"{name} holds a negative node id ({lo}); node ids must lie in [0, num_nodes)")
    if num_src is None and num_dst is None:
        num_src = num_dst = max(hi_src, hi_dst) + 1
    elif num_src is None:
        num_src = num_dst
    elif num_dst is None:
        num_dst = num_src
    if hi_src >= num_src:
        raise IndexError(f"{name}[0] holds source id {hi_src} but there are only {num_src} source nodes; "
                         f"ids must lie in [0, {num_src}) — pass the right num_nodes/size or fix {name}")
    if hi_dst >= num_dst:
        raise IndexError(f"{name}[1] holds destination id {hi_dst} but there are only {num_dst} "
                         f"destination nodes; ids must lie in [0, {num_dst}) — pass the right "
                         f"num_nodes/size or fix {name}")
    return num_src, num_dst


# ---------------------------------------------------------------------- cache
_CACHE: "OrderedDict[tuple, Tuple[weakref.ref, Any, Any, int]]" = OrderedDict()
_CACHE_IDS: Dict[int, set] = {}  # id(tensor) -> its entries' keys (a key starts with the id)
_CACHE_HELD = 0  # the entries' key tensors' bytes (_index_bytes), summed
# the least recently used entries go once there are more than _CACHE_ENTRIES of them and their key tensors
# (the edge_index / adjacency inputs) hold more than _CACHE_INDEX_BYTES together (set_cache_limit)
_CACHE_ENTRIES = 16
_CACHE_INDEX_BYTES = 64 << 20
# threads share the cache (a threaded inference server, DataParallel): its lookups, scans and evictions hold this
# lock (re-entrant: a dead tensor's weakref callback may run inside them); the builds run outside it
_CACHE_LOCK = threading.RLock()


def clear_cache() -> None:
    """Forget every cached :class:`Graph`."""
    global _CACHE_HELD
    with _CACHE_LOCK:
        _CACHE.clear()
        _CACHE_IDS.clear()
        _CACHE_HELD = 0


def set_cache_limit(entries: Optional[int] = None, index_bytes: Optional[int] = None) -> Tuple[int, int]:
    """Bound the cache of graphs built from ``edge_index`` / adjacency inputs; returns the previous bounds.

    An entry lives as long as its input tensor (a deleted ``edge_index`` drops its graph) and holds that
    tensor's CSR structure and what layers derive from it (transpose, normalised weights): 4-8 times the input's
    bytes (measured: 4.5x for graphs of 40k edges, 8x for graphs of 40 edges; ~0.5 GB at the default bound with
    thousands of small kept graphs).  The least recently used entries are dropped only while there are more
    than ``entries`` of them (default 16) *and* their inputs hold more than ``index_bytes`` together (default
    64 MiB of ``edge_index``), so a training loop that cycles over many kept graphs sorts each one once.  Lower
    ``index_bytes`` (or both) where memory is short, raise it for many large kept graphs; ``None`` keeps a
    bound.  A :class:`Graph` built once (``Graph.build``) and passed instead of ``edge_index`` keeps its own
    state whatever the bounds.
    """
    global _CACHE_ENTRIES, _CACHE_INDEX_BYTES
    for name, v in (("entries", entries), ("index_bytes", index_bytes)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"set_cache_limit: {name} must be an int >= 0 (or None to keep the bound), got {v!r}")
    with _CACHE_LOCK:
        old = (_CACHE_ENTRIES, _CACHE_INDEX_BYTES)
        if entries is not None:
            _CACHE_ENTRIES = entries
        if index_bytes is not None:
            _CACHE_INDEX_BYTES = index_bytes
        _evict()
    return old


def _index_bytes(t: Tensor) -> int:
    """The bytes of a cache key tensor's index data (a sparse tensor's indices, a strided tensor's values)."""
    if t.layout == torch.sparse_coo:
        return t._indices().nbytes
    if t.layout == torch.sparse_csr:
        return t.crow_indices().nbytes + t.col_indices().nbytes
    return t.numel() * t.element_size() if t.layout == torch.strided else 0


def _put(key: tuple, entry: tuple) -> None:
    """Store an entry (caller holds the lock)."""
    global _CACHE_HELD
    _pop(key)  # (another thread may have stored the same key while this one built it)
    _CACHE[key] = entry
    _CACHE_IDS.setdefault(key[0], set()).add(key)
    _CACHE_HELD += entry[3]


def _pop(key: tuple) -> None:
    """Drop an entry if present (caller holds the lock)."""
    global _CACHE_HELD
    entry = _CACHE.pop(key, None)
    if entry is not None:
        _CACHE_HELD -= entry[3]
        keys = _CACHE_IDS.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del _CACHE_IDS[key[0]]


def _evict() -> None:
    """Drop the least recently used entries while both bounds are exceeded (caller holds the lock)."""
    while len(_CACHE) > _CACHE_ENTRIES and _CACHE_HELD > _CACHE_INDEX_BYTES:
        _pop(next(iter(_CACHE)))


def _uncache(key: tuple) -> None:
    with _CACHE_LOCK:
        _pop(key)


_FP_BLOCK = 1 << 20
_FP_WEIGHTS: Dict[torch.device, Tensor] = {}


def _fp_weights(device: torch.device) -> Tensor:
    """``_FP_BLOCK`` fixed pseudo-random odd int64 weights (seeded), one copy per device."""
    w = _FP_WEIGHTS.get(device)
    if w is None:
        g = torch.Generator().manual_seed(0x5EED)
        w = (torch.randint(0, 2 ** 62, (_FP_BLOCK,), generator=g) * 2 + 1).to(device)
        _FP_WEIGHTS[device] = w
    return w


def _fingerprint(t: Tensor) -> Optional[tuple]:
    """The sum and a pseudo-randomly weighted sum of a strided integer tensor's values: an edit that bypasses
    the version counter (``t.data[...] = ...``, ``t.numpy()[...] = ...``) changes them (a different tensor
    matches with probability ~2^-60; the earlier sums of values, running sums and squares were equal for
    some different edge lists), so a cache hit cannot return the structure of edges that are no longer
    there.  Blocks of 2^20 values share the weights, each block times its own pseudo-random odd 64-bit factor
    (seeded; the factors 1, 3, 5, ... used before let an edit of +1, -2, +1 at one offset of three blocks keep
    both sums).  Two passes over the tensor and one host sync per lookup; int64 overflow wraps,
    deterministically."""
    if t.layout != torch.strided or t.is_floating_point() or t.is_complex() or t.numel() == 0:
        return None
    flat = t.detach().reshape(-1).long()
    w = _fp_weights(flat.device)
    n, L = flat.numel(), _FP_BLOCK
    if n <= _FP_HOST_MAX and _on_host(flat):  # small, on the CPU: numpy's int64 sums, the same wrapping values
        a = flat.numpy()
        return int(a.sum()), int((a * w[:n].numpy()).sum())
    if n <= L:
        h = (flat * w[:n]).sum()
    else:
        m = n // L
        factors = (torch.randint(0, 2 ** 62, (m + 1,), generator=torch.Generator().manual_seed(0xB10C)) * 2 + 1
                   ).to(flat.device)  # one per block and one for the tail (the same for every lookup)
        blocks = (flat[:m * L].view(m, L) * w).sum(1)
        h = (blocks * factors[:m]).sum() + (flat[m * L:] * w[:n - m * L]).sum() * factors[m]
    return tuple(torch.stack([flat.sum(), h]).tolist())


class _Content:
    """What a cache entry keeps to recognise its tensor's values on a later lookup: a copy of a small strided
    tensor (up to ``_FP_HOST_MAX`` values: cheaper to take and to compare than a fingerprint, and exact), else
    the fingerprint (:func:`_fingerprint`; None for sparse layouts, whose callers put their indices'
    fingerprints in the tag).  The current tensor's fingerprint is taken at most once per lookup."""

    __slots__ = ("t", "_fp")

    def __init__(self, t: Tensor):
        self.t, self._fp = t, ()

    def fp(self) -> Optional[tuple]:
        if self._fp == ():
            self._fp = _fingerprint(self.t)
        return self._fp

    def kept(self) -> Any:
        t = self.t
        if t.layout == torch.strided and t.numel() <= _FP_HOST_MAX:
            return t.detach().clone()
        return self.fp()

    def matches(self, kept: Any) -> bool:
        if isinstance(kept, Tensor):
            return torch.equal(kept, self.t.detach())  # (same shape and device: both are in the key)
        return kept == self.fp()


def cached_for(t: Tensor, tag: tuple, build: Callable[[], Any]) -> Any:
    """``build()``, cached on the identity and version of tensor ``t`` plus ``tag``.

    Anything derived only from ``t``'s values (a graph structure, normalised
    weights) can be cached this way; an in-place change of ``t`` bumps its
    version and invalidates the entry, an edit that bypasses the version counter
    changes the tensor's values, which every hit compares with the entry's copy of them (small tensors)
    or fingerprint, and invalidates it too, and a dead ``t`` never matches.
    """
    if _is_compiling() or t.is_inference():  # inference tensors have no version counter (an in-place
        return build()  # edit could not be seen)
    if t.layout == torch.sparse_coo:
        ptr = t._values().data_ptr()
    elif t.layout == torch.sparse_csr:
        ptr = t.values().data_ptr()
    else:
        ptr = t.data_ptr()
    key = (id(t), ptr, t._version, tuple(t.shape), t.device) + tuple(tag)
    content = _Content(t)
    # a structure built under inference_mode holds inference tensors, unusable by a later training step:
    # it is kept under its own key, which only calls under inference_mode read
    inference = torch.is_inference_mode_enabled()
    with _CACHE_LOCK:
        for k in (key, key + ("inference_mode",)) if inference else (key,):
            hit = _CACHE.get(k)
            if hit is not None and hit[0]() is t and content.matches(hit[2]):
                _CACHE.move_to_end(k)
                return hit[1]
        if inference:
            key = key + ("inference_mode",)
        else:  # the main entry serves every call: the inference-mode twin goes
            _pop(key + ("inference_mode",))
        # entries of this very tensor from before an in-place refill (older version, other data or values) can
        # never match again: dropped, so a buffer refilled every step does not fill the cache with dead graphs
        for k in list(_CACHE_IDS.get(id(t), ())):
            v = _CACHE.get(k)
            if v is not None and v[0]() is t and ((k[1], k[2]) != (ptr, t._version) or not content.matches(v[2])):
                _pop(k)
    out = build()
    kept = content.kept()
    with _CACHE_LOCK:
        # the entry goes when t dies: a deleted edge_index does not keep its structure alive
        _put(key, (weakref.ref(t, lambda _, k=key: _uncache(k)), out, kept, _index_bytes(t)))
        _evict()
    return out


def _size(num_nodes: Optional[int], size: Size) -> Tuple[Optional[int], Optional[int]]:
    if size is not None:
        if num_nodes is not None:
            raise ValueError("pass either num_nodes or size=(num_src, num_dst), not both")
        if len(size) != 2:
            raise ValueError(f"size must be (num_src, num_dst), got {size!r}")
        for i, v in enumerate(size):  # 34.5 was truncated to 34, a bool read as 0 / 1
            if v is not None and not torch.compiler.is_compiling():  # traced sizes: no guard on their values
                _check_count(v, f"size[{i}]", "graph")
        return (None if size[0] is None else int(size[0]), None if size[1] is None else int(size[1]))
    if num_nodes is not None and not torch.compiler.is_compiling():  # a float failed deep inside, True was 1 node
        _check_count(num_nodes, "num_nodes", "graph")  # (not while tracing: a check of a traced size guards it)
    return num_nodes, num_nodes


def refuse_jit_trace(what: str) -> None:
    """Raise under ``torch.jit.trace``: a trace records the graph's structure (its CSR, counts, cached state) as
    constants, so the traced module would be silently wrong on any other graph."""
    if torch.jit.is_tracing():
        raise RuntimeError(f"{what}: torch.jit.trace is not supported by gnnkit (the trace would keep this graph's "
                           "structure as constants and give wrong results on any other graph); use torch.compile "
                           "instead")


def is_sparse_adj(adj: Any) -> bool:
    """True for the sparse adjacency forms (torch.sparse COO/CSR, SparseTensor)."""
    if SparseTensor is not None and isinstance(adj, SparseTensor):
        return True
    return isinstance(adj, Tensor) and adj.layout in (torch.sparse_coo, torch.sparse_csr)


def as_graph(adj: Any, num_nodes: Optional[int] = None, size: Size = None,
             name: str = "edge_index") -> Tuple[Graph, Optional[Tensor]]:
    """Build (or fetch from the cache) the :class:`Graph` of any accepted adjacency form.

    Args:
        adj: a :class:`Graph` (returned as it is), ``edge_index`` ``[2, E]`` (int32/int64, also ``EdgeIndex``), a
            ``torch.sparse`` COO/CSR ``adj_t`` of shape ``[num_dst, num_src]``, or a
            ``torch_sparse.SparseTensor`` ``adj_t``.
        num_nodes: node count of a plain graph (default: inferred).
        size: ``(num_src, num_dst)`` for bipartite graphs, PyG's order.
        name: argument name used in error messages.

    Returns:
        ``(graph, edge_weight)`` where ``edge_weight`` is the sparse matrix's values
        in CSR order (``graph.perm is None`` then), or ``None`` for ``edge_index`` input.
    """
    refuse_jit_trace(name)
    num_src, num_dst = _size(num_nodes, size)
    if isinstance(adj, Graph):
        if num_src is not None and num_src != adj.num_src or num_dst is not None and num_dst != adj.num_dst:
            raise ValueError(f"{name} is a Graph with num_src={adj.num_src}, num_dst={adj.num_dst} but the "
                             f"inputs have num_src={num_src}, num_dst={num_dst}; build the Graph for these "
                             "node features")
        return adj, None
    if SparseTensor is not None and isinstance(adj, SparseTensor):
        return _from_sparse_tensor(adj, num_src, num_dst, name)
    if not isinstance(adj, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [2, E], a torch.sparse adj_t or a SparseTensor, "
                         f"got {type(adj).__name__}; convert it with torch.as_tensor(...)")
    if adj.layout in (torch.sparse_coo, torch.sparse_csr):
        return _from_torch_sparse(adj, num_src, num_dst, name)
    if isinstance(adj, Tensor) and adj.layout != torch.strided:
        raise ValueError(f"{name}: sparse layout {adj.layout} is not supported; use COO or CSR "
                         f"(adj_t.to_sparse_csr()) or an edge_index [2, E]")
    if isinstance(adj, Tensor):
        from torch_geometric import EdgeIndex  # (torch-geometric >= 2.5) knows its sparse size
        if isinstance(adj, EdgeIndex):
            s0, s1 = adj.sparse_size()
            num_src = num_src if num_src is not None else s0
            num_dst = num_dst if num_dst is not None else s1
            adj = adj.as_tensor()

    def build():
        ns, nd = validate_edge_index(adj, num_src, num_dst, name)
        return Graph.from_coo(adj[0], adj[1], ns, nd, check=False)

    return cached_for(adj, ("graph", num_src, num_dst), build), None


def _check_adj_size(shape, num_src, num_dst, name):
    nd, ns = int(shape[0]), int(shape[1])
    if num_src is not None and num_src != ns or num_dst is not None and num_dst != nd:
        raise ValueError(f"{name} has shape [{nd}, {ns}] (adj_t convention: [num_dst, num_src]) but the "
                         f"inputs have num_src={num_src}, num_dst={num_dst}; check the node features "
                         f"or pass adj.t() if it is not transposed")
    return ns, nd


def _check_csr(rowptr: Tensor, col: Tensor, ns: int, nd: int, name: str, matrix: bool = True) -> None:
    """A compressed structure's invariants (``torch.sparse_csr_tensor`` does not check them by default, and a
    column id out of range would read memory outside ``x``); under ``torch.compile`` the column range only, as
    an assertion in the graph.  ``matrix``: ``name`` is a sparse matrix (the fixes name its construction),
    else :meth:`Graph.from_csr`'s arguments."""
    if not _is_compiling():
        if rowptr.dim() != 1 or rowptr.numel() != nd + 1:
            raise ValueError(f"{name}: the row pointer{'' if matrix else ' (rowptr)'} must have num_rows + 1 = "
                             f"{nd + 1} entries, got {list(rowptr.shape)}")
        if int(rowptr[0]) != 0 or int(rowptr[-1]) != col.numel() or bool((rowptr[1:] < rowptr[:-1]).any()):
            raise ValueError(f"{name}: the row pointer must start at 0, never decrease and end at the number of "
                             f"stored entries ({col.numel()}); fix: "
                             + ("build the matrix with check_invariants=True to find the bad entry" if matrix
                                else "correct rowptr"))
    bad = _ids_out_of_range(col, ns, f"{name} holds a column id outside [0, num_src)")
    if bad is not None:
        who, fix = (name, "the matrix's column indices") if matrix else (f"{name}: col", "col")
        raise IndexError(f"{who} holds column ids from {bad[0]} to {bad[1]}, outside [0, {ns}) (its {ns} source "
                         f"nodes); fix {fix}")


def _checked_csr(rowptr: Tensor, col: Tensor, ns: int, nd: int, name: str) -> Graph:
    """``Graph.from_csr`` after :func:`_check_csr`."""
    _check_csr(rowptr, col, ns, nd, name)
    return Graph.from_csr(rowptr, col, ns, nd, check=False)


def _from_torch_sparse(adj: Tensor, num_src, num_dst, name) -> Tuple[Graph, Optional[Tensor]]:
    """The structure is cached on ``adj``; the values are read afresh every call."""
    if adj.dim() != 2:
        raise ValueError(f"{name} must be a 2-D sparse matrix, got {adj.dim()} dimensions")
    ns, nd = _check_adj_size(adj.shape, num_src, num_dst, name)
    if adj.layout == torch.sparse_coo:
        if not adj.is_coalesced():  # duplicates are summed, as PyG's to_edge_index does (torch's coalesce),
            raw = adj._indices()    # with the structure and each entry's slot cached on this tensor

            def build_raw() -> Tuple[Graph, Tensor]:  # checked first: coalesce folds a negative id elsewhere
                validate_edge_index(torch.stack([raw[1], raw[0]]), ns, nd, name)
                uniq, slot = torch.unique(raw[0].long() * max(ns, 1) + raw[1].long(), return_inverse=True)
                # unique keys come sorted by (row, column) = (destination, source): already CSR order
                return Graph.from_coo(uniq % max(ns, 1), uniq // max(ns, 1), ns, nd, check=False), slot
            # the indices' fingerprint in the key: a tensor built from an index tensor shares its storage, and an
            # edit of that index tensor bumps no version the sparse tensor carries
            g, slot = cached_for(adj, ("graph-uncoalesced", ns, nd, _fingerprint(raw)), build_raw)
            if adj.requires_grad:  # coalesce's values carry the gradient (its order is the slots' order)
                return g, adj.coalesce().values()
            vals = adj._values()  # no sort: each entry added into its cached slot
            return g, vals.new_zeros((g.num_edges,) + tuple(vals.shape[1:])).index_add(0, slot, vals)
        idx = adj.indices()

        def build() -> Graph:  # ids checked once, with the structure (torch does not check them by default)
            validate_edge_index(torch.stack([idx[1], idx[0]]), ns, nd, name)
            return Graph.from_coo(idx[1], idx[0], ns, nd, check=False)
        g = cached_for(adj, ("graph", ns, nd, _fingerprint(idx)), build)  # the indices' fingerprint: as above
        return g, g.to_csr_order(adj.values())
    crow, ccol = adj.crow_indices(), adj.col_indices()
    g = cached_for(adj, ("graph", ns, nd, _fingerprint(crow), _fingerprint(ccol)),
                   lambda: _checked_csr(crow, ccol, ns, nd, name))
    return g, adj.values()


def _from_sparse_tensor(adj, num_src, num_dst, name) -> Tuple[Graph, Optional[Tensor]]:
    ns, nd = _check_adj_size(adj.sizes(), num_src, num_dst, name)
    rowptr, col, value = adj.csr()
    return _checked_csr(rowptr, col, ns, nd, name), value
