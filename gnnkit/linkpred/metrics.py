"""Link-prediction metrics from OGB's ``Evaluator`` and scikit-learn, minus their traps.

* OGB's Hits@K returns 1.0 when there are fewer than K negatives; here that is a
  :class:`ValueError`.
* OGB's MRR on numpy input fails (its numpy branch calls ``sum(dim=...)``); inputs are converted
  to torch first.  Ties: a positive scored equal to some of its negatives gets the mean of its
  optimistic and pessimistic rank, ``1 + #greater + #equal / 2`` (OGB's torch branch).
* Scores keep their precision: float64 scores are ranked in float64 (rounding them to float32 turns
  close scores into ties, which Hits@K does not count).  MRR's reciprocal ranks are float32, as in
  OGB (``1 / 3`` is off by about 1e-8); their mean is taken in float64.
* scikit-learn's ROC-AUC / AP on one class only is undefined; here that is a
  :class:`ValueError` naming the missing class, as are NaN scores (and ±inf for ROC-AUC / AP).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from gnnkit._checks import check_int

Scores = Union[Tensor, Sequence[float]]  # a 1-D tensor of scores (lists and arrays are converted)


def _scores(x, name: str, dim: int = 1) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif not isinstance(x, Tensor):
        x = torch.as_tensor(x, dtype=torch.float64)  # Python floats are doubles
    x = x.detach().cpu()
    if not torch.is_floating_point(x):
        x = x.double()
    elif x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if dim == 1:
        if x.dim() > 2 or (x.dim() == 2 and min(x.shape) > 1):
            raise ValueError(f"{name} must be one score per pair ([N] or [N, 1]), got shape {list(x.shape)}; "
                             "fix: a [P, K] matrix of per-positive negatives is mrr's input, Hits@K ranks every "
                             "positive against one shared pool of negatives")
        x = x.reshape(-1)
    elif x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {list(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} holds NaN scores; fix: check the model output")
    return x


def hits_at_k(pos_scores: Scores, neg_scores: Scores, k: int) -> float:
    """Fraction of positives scored above the K-th best negative (OGB's Hits@K).

    Every positive is ranked against the same negatives.  Raises ``ValueError`` when
    there are fewer than ``k`` negatives (OGB would silently return 1.0).
    """
    from ogb.linkproppred import Evaluator
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = int(k)
    pos, neg = _scores(pos_scores, "pos_scores"), _scores(neg_scores, "neg_scores")
    if neg.numel() < k:
        raise ValueError(f"hits_at_k: only {neg.numel()} negatives for Hits@{k}; OGB would report 1.0. "
                         f"Fix: sample at least {k} negatives or use a smaller k")
    if pos.numel() == 0:
        raise ValueError("hits_at_k: no positive scores")
    ev = Evaluator(name="ogbl-ddi")
    ev.K = k
    dt = torch.promote_types(pos.dtype, neg.dtype)
    return float(ev.eval({"y_pred_pos": pos.to(dt), "y_pred_neg": neg.to(dt)})[f"hits@{k}"])


def mrr(pos_scores: Scores, neg_scores: Scores) -> float:
    """Mean reciprocal rank of each positive among its own row of negatives (OGB's MRR).

    Args:
        pos_scores: ``[P]`` scores of the positives.
        neg_scores: ``[P, K]`` scores of each positive's negatives; numpy works.
    """
    from ogb.linkproppred import Evaluator
    pos = _scores(pos_scores, "pos_scores")
    neg = _scores(neg_scores, "neg_scores", dim=2)
    if neg.size(0) != pos.numel():
        raise ValueError(f"mrr: neg_scores has {neg.size(0)} rows for {pos.numel()} positives; "
                         "fix: one row of negatives per positive")
    if neg.size(1) == 0:
        raise ValueError("mrr: no negatives per positive")
    if pos.numel() == 0:  # the mean over no positives is NaN; hits_at_k raises for the same input
        raise ValueError("mrr: no positive scores")
    ev = Evaluator(name="ogbl-citation2")
    dt = torch.promote_types(pos.dtype, neg.dtype)
    out = ev.eval({"y_pred_pos": pos.to(dt), "y_pred_neg": neg.to(dt)})
    return float(out["mrr_list"].double().mean())


def _binary(pos_scores, neg_scores):
    pos, neg = _scores(pos_scores, "pos_scores"), _scores(neg_scores, "neg_scores")
    if pos.numel() == 0 or neg.numel() == 0:
        missing = "positive" if pos.numel() == 0 else "negative"
        raise ValueError(f"no {missing} scores: ROC-AUC and AP need both classes")
    for x, name in ((pos, "pos_scores"), (neg, "neg_scores")):
        if torch.isinf(x).any():
            raise ValueError(f"{name} holds ±inf scores, which scikit-learn's ROC-AUC and AP refuse; fix: pass "
                             "finite logits or probabilities")
    y = np.concatenate([np.ones(pos.numel()), np.zeros(neg.numel())])
    s = torch.cat([pos, neg]).double().numpy()
    return y, s


def roc_auc(pos_scores: Scores, neg_scores: Scores) -> float:
    """Area under the ROC curve (scikit-learn)."""
    from sklearn.metrics import roc_auc_score
    y, s = _binary(pos_scores, neg_scores)
    return float(roc_auc_score(y, s))


def average_precision(pos_scores: Scores, neg_scores: Scores) -> float:
    """Average precision (scikit-learn)."""
    from sklearn.metrics import average_precision_score
    y, s = _binary(pos_scores, neg_scores)
    return float(average_precision_score(y, s))


def too_few_negatives(num_negatives: int, ks: Sequence[int]) -> List[int]:
    """The ``k`` of ``ks`` that ``num_negatives`` negatives cannot rank (Hits@K needs at least K of them):
    :func:`evaluate` leaves them out, and ``gnnkit linkpred`` says so."""
    num_negatives = check_int("num_negatives", num_negatives, 0, who="too_few_negatives")
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence):
        raise ValueError(f"too_few_negatives: ks must be a sequence of ints >= 1 (e.g. (20, 50, 100)), got {ks!r}")
    return [k for k in ks if num_negatives < check_int("ks[i]", k, 1, who="too_few_negatives")]


def evaluate(pos_scores: Scores, neg_scores: Scores, ks: Sequence[int] = (20, 50, 100)) -> Dict[str, float]:
    """ROC-AUC, AP and Hits@K for each ``k`` that has enough negatives (the others, :func:`too_few_negatives`,
    are left out rather than scored 1.0)."""
    out = {"auc": roc_auc(pos_scores, neg_scores), "ap": average_precision(pos_scores, neg_scores)}
    n_neg = _scores(neg_scores, "neg_scores").numel()
    skip = too_few_negatives(n_neg, ks)
    for k in ks:
        if k not in skip:
            out[f"hits@{k}"] = hits_at_k(pos_scores, neg_scores, k)
    return out
