"""Checks that a train/val/test link split leaks nothing.

:func:`check_leakage` compares node pairs across the three splits, in original node
ids (``n_id`` / ``n_id_src`` / ``n_id_dst`` are applied when present) and, for
undirected graphs, as unordered pairs, so a reversed copy of an edge is caught too.

Errors (``strict=True`` raises :class:`LeakageError` on any):

* ``supervision_in_messages`` — a positive of a split is a message edge of the same
  or an earlier split (the model would see the edge it must predict);
* ``positive_overlap`` — two splits share a positive;
* ``negative_is_known_edge`` — a negative is a message edge or positive of its own
  or an earlier split (labelled 0 and 1 at once);
* ``negative_is_edge`` — a test negative is an edge of the full graph;
* ``conflicting_labels`` / ``duplicate_labels`` / ``bad_labels`` /
  ``index_out_of_range`` — inconsistent labels (a pair labelled twice, also as its
  reverse for undirected graphs; labels outside {0, 1}; shapes that disagree);
* ``node_overlap`` — inductive splits whose node sets intersect.

Warnings (reported, never raised):

* ``negative_is_heldout_edge`` — a training or validation negative that is a
  positive of a *later* split.  A split may only exclude what it knows; excluding
  held-out edges from its negatives would leak them (PyG #6946), so such collisions
  are label noise, counted here.  Rare with uniform negatives (none on Cora), common with
  ``"hard"`` ones, which seek the pairs that look most like edges: on Cora 34 of 528
  validation negatives (6.4 %) were test positives.
* ``self_loop_labels`` — a labelled pair ``(u, u)`` (graphs of one node type): a self-loop negative is a
  trivially easy pair gnnkit's samplers draw only when asked (``allow_self_loops=True``), a self-loop positive is an
  edge most encoders cannot score apart from the node itself.
* ``train_supervision_in_messages`` when ``allow_train_overlap=True``
  (``disjoint_train_ratio=0``, PyG's behaviour, chosen on purpose).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit._checks import check_flag

from ._graph import NEAR_SYMMETRIC, is_bipartite, is_symmetric, reciprocity

SPLITS = ("train", "val", "test")


@dataclass
class Issue:
    kind: str
    split: str
    count: int
    severity: str  # "error" | "warning"
    message: str

    def to_dict(self) -> Dict[str, object]:
        return {"kind": self.kind, "split": self.split, "count": self.count, "severity": self.severity,
                "message": self.message}


@dataclass
class LeakageReport:
    """What :func:`check_leakage` found; ``ok`` is True when there is no error."""
    issues: List[Issue] = field(default_factory=list)
    sizes: Dict[str, Dict[str, int]] = field(default_factory=dict)
    undirected: bool = False
    inductive: bool = False

    @property
    def errors(self) -> List[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> List[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> Dict[str, object]:
        return {"ok": self.ok, "undirected": self.undirected, "inductive": self.inductive,
                "sizes": self.sizes, "issues": [i.to_dict() for i in self.issues]}

    def __str__(self) -> str:
        head = "no leakage found" if self.ok else f"{len(self.errors)} leakage error(s)"
        lines = [head + (f", {len(self.warnings)} warning(s)" if self.warnings else "")]
        lines += [f"  [{i.severity}] {i.split}: {i.kind} x{i.count}: {i.message}" for i in self.issues]
        return "\n".join(lines)


class LeakageError(ValueError):
    """Raised by ``check_leakage(..., strict=True)``; ``.report`` holds the findings."""

    def __init__(self, report: LeakageReport):
        super().__init__(str(report))
        self.report = report


def _member(a: Tensor, b_sorted: Tensor) -> Tensor:
    """``a[i] in b`` for a sorted ``b``, by binary search (faster than ``torch.isin`` here)."""
    if b_sorted.numel() == 0 or a.numel() == 0:
        return torch.zeros_like(a, dtype=torch.bool)
    pos = torch.searchsorted(b_sorted, a).clamp_max(b_sorted.numel() - 1)
    return b_sorted[pos] == a


def _global(data: Data, ei: Tensor, bip: bool) -> Tensor:
    ei = ei.long()
    if bip:
        if "n_id_src" in data:
            ei = torch.stack([data.n_id_src[ei[0]], data.n_id_dst[ei[1]]])
    elif "n_id" in data:
        ei = data.n_id[ei]
    return ei


def check_leakage(train_data: Data, val_data: Data, test_data: Data, *,
                  full_edge_index: Optional[Tensor] = None, strict: bool = False,
                  is_undirected: Optional[bool] = None, allow_train_overlap: bool = False) -> LeakageReport:
    """Check a link split for leakage and inconsistent labels.

    Args:
        train_data, val_data, test_data: splits with ``edge_index`` (message edges),
            ``edge_label_index`` and ``edge_label`` (1 positive, 0 negative).
        full_edge_index: every edge of the original graph (original ids); enables the
            check that test negatives are non-edges and counts held-out collisions.
        strict: raise :class:`LeakageError` when an error is found.
        is_undirected: compare unordered pairs; default: inferred — True when ``full_edge_index``
            is symmetric; False when it holds some pairs both ways but fewer than half of its edges
            (a directed graph); otherwise True when at least half of the splits that have message
            edges (self-loops aside) store every one of them in both directions, as the splitters
            do for an undirected graph: one edited split cannot hide a reverse pair, an input
            graph given with each edge once is recognised, and a small part of a directed graph
            whose few messages happen to be symmetric decides nothing.  Pass it explicitly when
            you know.
        allow_train_overlap: report training supervision edges that are also
            training message edges as a warning, not an error.

    Returns:
        A :class:`LeakageReport`.
    """
    splits = (train_data, val_data, test_data)
    for name, d in zip(SPLITS, splits):  # before anything reads them (the orientation below does)
        if isinstance(d, Tensor) or not callable(getattr(d, "keys", None)):
            raise ValueError(f"check_leakage: {name}_data must be a torch_geometric Data (one split of a link "
                             f"splitter: train, val, test), got {type(d).__name__}; fix: pass the three split Data "
                             "objects, and the whole graph's edges as full_edge_index=")
        for attr in ("edge_index", "edge_label_index", "edge_label"):
            if attr not in d or d[attr] is None:
                raise ValueError(f"check_leakage: {name}_data has no {attr}; fix: pass splits made by a "
                                 "link splitter")
        if not isinstance(d.edge_index, Tensor) or d.edge_index.dim() != 2 or d.edge_index.size(0) != 2:
            got = list(d.edge_index.shape) if isinstance(d.edge_index, Tensor) else type(d.edge_index).__name__
            raise ValueError(f"check_leakage: {name}_data.edge_index must be a [2, E] tensor of message edges, got "
                             f"{got}; fix: pass splits made by a link splitter")
    allow_train_overlap = check_flag("allow_train_overlap", allow_train_overlap, who="check_leakage")
    bips = [is_bipartite(d) for d in splits]
    if len(set(bips)) != 1:
        raise ValueError("check_leakage: either all three splits are bipartite (num_src/num_dst) or none")
    bip = bips[0]
    if is_undirected is not None:
        und = check_flag("is_undirected", is_undirected, who="check_leakage")
    elif bip:
        und = False
    elif full_edge_index is not None and is_symmetric(full_edge_index):
        und = True
    elif full_edge_index is not None and 0 < reciprocity(full_edge_index) < NEAR_SYMMETRIC:
        und = False  # directed: a few pairs stored both ways, most one way
    else:  # the splits' messages: symmetric in every split an undirected split made (an edited one may no longer
        # be; an input graph given with each edge once is not symmetric, but its splits' messages are)
        rec = [reciprocity(d.edge_index) for d in splits if bool((d.edge_index[0] != d.edge_index[1]).any())]
        und = bool(rec) and 2 * sum(r == 1.0 for r in rec) >= len(rec)
    if bip and und:
        raise ValueError("check_leakage: is_undirected=True is not defined for bipartite splits")
    report = LeakageReport(undirected=und)
    add = report.issues.append

    msgs, labels, ok_split = [], [], []
    for name, d in zip(SPLITS, splits):
        eli, lab = d.edge_label_index, d.edge_label
        good = True
        if eli.dim() != 2 or eli.size(0) != 2 or lab.dim() != 1 or lab.numel() != eli.size(1):
            add(Issue("bad_labels", name, int(lab.numel()), "error",
                      f"edge_label_index {list(eli.shape)} and edge_label {list(lab.shape)} do not match"))
            good = False
        elif lab.numel() and not bool(((lab == 0) | (lab == 1)).all()):
            bad = int((~((lab == 0) | (lab == 1))).sum())
            add(Issue("bad_labels", name, bad, "error", "labels outside {0, 1} (offset labels, PyG #9262)"))
            good = False
        if bip:
            lim = (int(d.num_src), int(d.num_dst))
        else:
            lim = (int(d.num_nodes), int(d.num_nodes))
        for attr in ("edge_index", "edge_label_index"):
            ei = d[attr]
            if ei.numel() and (int(ei.min()) < 0 or int(ei[0].max()) >= lim[0] or int(ei[1].max()) >= lim[1]):
                add(Issue("index_out_of_range", name, 1, "error", f"{attr} has ids outside the split's nodes"))
                good = False
        ok_split.append(good)
        msgs.append(_global(d, d.edge_index, bip) if good else None)
        if good:
            labels.append((_global(d, eli[:, lab == 1], bip), _global(d, eli[:, lab == 0], bip)))
        else:
            labels.append(None)

    # one key space for every pair in original ids
    tensors = [t for t in msgs if t is not None] + [t for pn in labels if pn for t in pn]
    if full_edge_index is not None:
        tensors.append(full_edge_index.long())
    nonempty = [t for t in tensors if t.numel()]
    nd = (max(int(t[1].max()) for t in nonempty) + 1) if nonempty else 1
    if not bip and nonempty:
        nd = max(nd, max(int(t.max()) for t in nonempty) + 1)

    def keys(ei: Tensor) -> Tensor:
        u, v = ei[0], ei[1]
        if und:
            u, v = torch.minimum(u, v), torch.maximum(u, v)
        return u * nd + v

    empty = torch.empty(0, dtype=torch.long)
    mk = [torch.unique(keys(m)) if m is not None else empty for m in msgs]
    pk_raw = [keys(pn[0]) if pn else empty for pn in labels]
    nk_raw = [keys(pn[1]) if pn else empty for pn in labels]
    pk = [torch.unique(k) for k in pk_raw]
    nk = [torch.unique(k) for k in nk_raw]
    for i, name in enumerate(SPLITS):
        report.sizes[name] = {"message_edges": int(msgs[i].size(1)) if msgs[i] is not None else 0,
                              "positives": int(pk_raw[i].numel()), "negatives": int(nk_raw[i].numel())}
        for what, raw, u in (("positives", pk_raw[i], pk[i]), ("negatives", nk_raw[i], nk[i])):
            if raw.numel() != u.numel():
                add(Issue("duplicate_labels", name, raw.numel() - u.numel(), "error",
                          f"{what} repeat a pair" + (" (possibly as its reverse)" if und else "")))
        c = int(_member(pk[i], nk[i]).sum())
        if c:
            add(Issue("conflicting_labels", name, c, "error", "pairs labelled both 1 and 0"))
        if not bip and labels[i] is not None:
            for what, ei in (("positives", labels[i][0]), ("negatives", labels[i][1])):
                c = int((ei[0] == ei[1]).sum())
                if c:
                    add(Issue("self_loop_labels", name, c, "warning", f"{name} {what} include self-loops (u, u)"))
        for j in range(i + 1):
            c = int(_member(pk[i], mk[j]).sum())
            if c:
                if i == 0 and j == 0 and allow_train_overlap:
                    add(Issue("train_supervision_in_messages", name, c, "warning",
                              "training supervision edges are also training message edges "
                              "(disjoint_train_ratio=0, chosen on purpose)"))
                else:
                    add(Issue("supervision_in_messages", name, c, "error",
                              f"{name} positives are message edges of {SPLITS[j]}"))
            known_j = torch.cat([mk[j], pk[j]]).sort().values if j < i else mk[j]
            c = int(_member(nk[i], known_j).sum())
            if c:
                add(Issue("negative_is_known_edge", name, c, "error",
                          f"{name} negatives are {'message edges or positives' if j < i else 'message edges'} "
                          f"of {SPLITS[j]}"))
        for j in range(i + 1, 3):
            c = int(_member(pk[i], pk[j]).sum())
            if c:
                add(Issue("positive_overlap", f"{name}/{SPLITS[j]}", c, "error",
                          f"{name} and {SPLITS[j]} share positives"))
    # negatives against edges unknown to the split
    if full_edge_index is not None:
        fk = torch.unique(keys(full_edge_index.long()))
        later = [fk, fk, fk]
    else:
        later = [torch.unique(torch.cat([mk[1], pk[1], mk[2], pk[2]])), torch.unique(torch.cat([mk[2], pk[2]])),
                 empty]
    for i, name in enumerate(SPLITS):
        known = torch.unique(torch.cat(mk[:i + 1] + pk[:i + 1]))
        hit = nk[i][_member(nk[i], later[i]) & ~_member(nk[i], known)]
        if hit.numel():
            if i == 2:
                add(Issue("negative_is_edge", name, int(hit.numel()), "error",
                          "test negatives are edges of the full graph"))
            else:
                add(Issue("negative_is_heldout_edge", name, int(hit.numel()), "warning",
                          f"{name} negatives that are held-out edges (label noise; excluding them would leak "
                          "held-out edges, PyG #6946)"))
    # node-disjointness of inductive splits
    id_keys = ("n_id_src", "n_id_dst") if bip else ("n_id",)
    if all(all(k in d for k in id_keys) for d in splits):
        report.inductive = True
        for k in id_keys:
            for i in range(3):
                for j in range(i + 1, 3):
                    c = int(_member(splits[i][k], splits[j][k].sort().values).sum())
                    if c:
                        add(Issue("node_overlap", f"{SPLITS[i]}/{SPLITS[j]}", c, "error",
                                  f"inductive splits share {k} nodes"))
    if strict and not report.ok:
        raise LeakageError(report)
    return report
