"""Link prediction without leakage: splits, negative sampling, leakage checks, metrics.

* :class:`TransductiveLinkSplit` / :class:`InductiveLinkSplit` — splits whose
  supervision edges are never message edges of their own or an earlier split;
* :func:`negative_sampling` / :class:`NegativeSampler` — exact-count, unique,
  vectorised negatives (uniform, degree-weighted, HeaRT-style hard);
* :func:`check_leakage` — a report of every way a split can leak;
* :mod:`gnnkit.linkpred.metrics` — Hits@K, MRR, ROC-AUC, AP with their traps guarded.

See ``docs/linkpred.md``.
"""
from .leakage import Issue, LeakageError, LeakageReport, check_leakage
from .metrics import average_precision, evaluate, hits_at_k, mrr, roc_auc
from .negative import NegativeSampler, PairSpace, negative_sampling
from .split import (
                    InductiveLinkSplit,
                    TransductiveLinkSplit,
                    infer_undirected,
                    is_bipartite,
                    train_negative_sampler,
                    unique_edges,
)

__all__ = [
    "TransductiveLinkSplit", "InductiveLinkSplit", "train_negative_sampler", "negative_sampling",
    "NegativeSampler", "PairSpace", "check_leakage", "LeakageReport", "LeakageError", "Issue",
    "hits_at_k", "mrr", "roc_auc", "average_precision", "evaluate", "infer_undirected", "is_bipartite",
    "unique_edges",
]
