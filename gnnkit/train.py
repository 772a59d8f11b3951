"""Full-batch node classification on a Planetoid graph, gnnkit's layers next to PyG's.

The model is the same for both implementations; only the conv class differs, and
both start from the same weights in each run (the first implementation's initial
``state_dict``, loaded into the others'), so accuracy differences come from numerics alone.
Defaults are Kipf & Welling's (2017): 2 layers, 16 hidden units, dropout 0.5,
Adam with lr 0.01 and weight decay 5e-4, 200 epochs, row-normalised features (the weight
decay on every parameter; Kipf's code and PyG's ``examples/gcn.py`` decay the first layer's
only).
The test accuracy is read at the epoch of best validation accuracy; time is the median
training epoch, memory the peak of one training step (forward + backward) above what was in
use before it.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnkit.typing import Adj

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Data

def _gin(lib: Any, i: int, o: int, hidden: int) -> torch.nn.Module:
    return lib.GINConv(torch.nn.Sequential(torch.nn.Linear(i, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, o)))


# model name -> builder(lib, in_channels, out_channels, hidden, last) of one conv; ``lib`` is gnnkit.nn or
# torch_geometric.nn (same class names, same state_dict keys).  GAT follows Velickovic et al.: 8 heads of
# ``hidden`` features, then one head for the classes.
MODELS: Dict[str, Callable[..., torch.nn.Module]] = {
    # cached=True: one fixed graph, as PyG's examples/gcn.py and Kipf's code (PyG recomputes the normalisation on
    # every call without it)
    "gcn": lambda lib, i, o, hidden, last: lib.GCNConv(i, o, cached=True),
    "sage": lambda lib, i, o, hidden, last: lib.SAGEConv(i, o),
    "gat": lambda lib, i, o, hidden, last: (lib.GATConv(i, o, heads=1, concat=False) if last
                                            else lib.GATConv(i, hidden, heads=8)),
    "gin": lambda lib, i, o, hidden, last: _gin(lib, i, o, hidden),
    # ID-GNN-Fast (You et al. 2021): a GCN on the node features plus each node's closed-walk counts
    # (identity_features), so both libraries train the same model on the same augmented input
    "idgnn-fast": lambda lib, i, o, hidden, last: lib.GCNConv(i, o, cached=True),
}
_WIDTH = {"gat": 8}  # the first layer's output width is hidden * heads
IDGNN_FAST_CYCLES = 4  # closed walks of length 1..4 (ID-GNN-Fast's cycle-count features)


def identity_features(x: Tensor, edge_index: Tensor, max_length: int = IDGNN_FAST_CYCLES) -> Tensor:
    """ID-GNN-Fast's input: ``x`` with ``max_length`` columns appended, column ``k-1`` =
    ``log1p([A^k]_vv)`` (closed walks of length k, :func:`gnnkit.nn.cycle_count_features`) divided by its
    largest value, so the counts (hundreds for hubs at k=4) sit on the scale of normalised features."""
    from gnnkit.nn import cycle_count_features
    c = cycle_count_features(edge_index.cpu(), x.size(0), max_length).to(x.dtype).log1p()  # counted on the CPU
    c = c / c.amax(dim=0, keepdim=True).clamp(min=1e-12)
    return torch.cat([x, c.to(x.device)], dim=1)


IMPLS = ("gnnkit", "pyg")


@dataclass
class TrainConfig:
    dataset: str = "Cora"
    model: str = "gcn"
    hidden: int = 16
    dropout: float = 0.5
    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 200
    runs: int = 1
    seed: int = 0
    impls: List[str] = field(default_factory=lambda: ["gnnkit", "pyg"])
    root: Optional[str] = None
    num_layers: int = 2
    diagnose: bool = False  # Dirichlet energy and MAD per layer of the trained models (gnnkit.nn.diagnostics)


class NodeClassifier(torch.nn.Module):
    """``num_layers`` convs (default 2) with ReLU and dropout between them, dropout on the input:
    ``conv2(dropout(relu(conv1(dropout(x)))))`` for two.

    ``model``: a key of :data:`MODELS`; ``lib``: ``gnnkit.nn`` or ``torch_geometric.nn``."""

    def __init__(self, model: str, lib: Any, in_channels: int, hidden: int, out_channels: int, dropout: float,
                 num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"--num-layers must be >= 1, got {num_layers}")
        build = MODELS[model]
        width = hidden * _WIDTH.get(model, 1)
        self.convs = torch.nn.ModuleList(
            build(lib, in_channels if i == 0 else width, out_channels if i == num_layers - 1 else hidden, hidden,
                  i == num_layers - 1) for i in range(num_layers))
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Adj) -> Tensor:
        x = input_dropout(x, self.dropout, self.training)
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = F.dropout(F.relu(x), self.dropout, self.training)
        return x


def input_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` for a mostly-zero input (Cora's bag of words is 1.3% non-zero).

    Only the non-zero entries draw a keep mask, so the result has exactly the distribution of
    ``F.dropout(x, p)`` (a zero stays zero either way) while drawing 77x fewer random numbers:
    on CPU, ``bernoulli_`` over all 3.9M entries of Cora's features cost more than the GCN itself.
    """
    if not training or p == 0.0:
        return x
    flat = x.reshape(-1)
    idx = flat.nonzero().view(-1)
    keep = torch.rand(idx.numel(), device=x.device) >= p
    out = torch.zeros_like(flat)
    out[idx] = flat[idx] * keep / (1.0 - p)
    return out.view_as(x)


def layer_library(model: str, impl: str) -> Any:
    """The module the layers of ``model`` come from: ``gnnkit.nn`` or ``torch_geometric.nn``."""
    if model not in MODELS:
        raise ValueError(f"--model {model!r} is not known; choose one of {sorted(MODELS)}")
    if impl not in IMPLS:
        raise ValueError(f"impl {impl!r} is not known; choose from {IMPLS}")
    if impl == "gnnkit":
        import gnnkit.nn as mod
    else:
        import torch_geometric.nn as mod
    return mod


def _accuracy(logits, y, mask) -> float:
    return float((logits[mask].argmax(-1) == y[mask]).float().mean())


def train_once(model: torch.nn.Module, data: "Data", cfg: TrainConfig,
               on_epoch: Optional[Callable[[], None]] = None) -> dict:
    """Train one model; return test accuracy at the best validation epoch and timings.

    Under ``torchrun`` (:mod:`gnnkit.distributed`) the model is wrapped in ``DistributedDataParallel`` and
    each rank's loss covers every ``world_size``-th training node, weighted by its share (the gradient average is
    the gradient of the full training loss, none dropped); every rank evaluates the whole graph with the same
    weights."""
    from gnnkit.distributed import init as dist_init, wrap

    ctx = dist_init("cpu")
    net = wrap(model, ctx)
    all_train = data.train_mask.nonzero().view(-1)
    train_nodes = ctx.shard(all_train)  # every world_size-th training node from this rank's: none dropped
    share = ctx.share_weight(train_nodes.numel(), all_train.numel())  # DDP's average: the full loss's gradient
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best_val, test_at_best, best_epoch = -1.0, 0.0, 0
    epoch_times = []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        out = net(data.x, data.edge_index)
        if train_nodes.numel():
            loss = F.cross_entropy(out[train_nodes], data.y[train_nodes]) * share
        else:  # more ranks than training nodes: this one joins the gradient average with 0
            loss = out.sum() * 0.0
        loss.backward()
        opt.step()
        epoch_times.append(time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            out = model(data.x, data.edge_index)
        val = _accuracy(out, data.y, data.val_mask)
        if val > best_val:
            best_val, test_at_best, best_epoch = val, _accuracy(out, data.y, data.test_mask), epoch
        if on_epoch is not None:
            on_epoch()
    # the first epochs include one-off work (graph sort, caches): report the median
    return {"test_acc": test_at_best, "val_acc": best_val, "best_epoch": best_epoch,
            "epoch_ms": 1e3 * statistics.median(epoch_times), "step_peak_mb": step_peak_mb(model, data)}


def step_peak_mb(model: torch.nn.Module, data: "Data") -> float:
    """Peak memory (MiB) of one training step's forward and backward above what was in use before it,
    measured with :class:`gnnkit.profile.PeakMemory` (CUDA allocator peak, or peak-RSS delta on CPU);
    the gradients are dropped afterwards, the weights are not changed.  NaN where it cannot be measured."""
    from gnnkit.profile import PeakMemory

    model.train()
    model.zero_grad(set_to_none=True)
    rec: Dict[str, float] = {}
    with PeakMemory(data.x.device).measure(rec):
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        del out
    model.zero_grad(set_to_none=True)
    return rec["peak_bytes"] / 2 ** 20


def run(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train ``cfg.runs`` seeds for each implementation in ``cfg.impls``; return a results dict."""
    import torch_geometric.transforms as T
    from tqdm.auto import tqdm

    from gnnkit.data import load_dataset

    for impl in cfg.impls:
        layer_library(cfg.model, impl)  # validate names before loading data
    ds = load_dataset(cfg.dataset, root=cfg.root)
    data = ds[0]
    if not hasattr(data, "train_mask"):  # (checked before the transform: ogbg-molhiv's integer x failed in it)
        raise ValueError(f"dataset {cfg.dataset!r} has no train/val/test masks; gnnkit train needs a node "
                         "classification dataset such as Cora, CiteSeer or PubMed")
    data = T.NormalizeFeatures()(data.clone())  # (in place on its argument)
    if cfg.model == "idgnn-fast":  # computed once, the same input for both libraries (data is a copy already)
        data.x = identity_features(data.x, data.edge_index)
    results = {impl: [] for impl in cfg.impls}
    bar = tqdm(total=cfg.runs * len(cfg.impls) * cfg.epochs, disable=not progress, unit="epoch",
               desc=f"{cfg.model} on {cfg.dataset}")
    for r in range(cfg.runs):
        seed = cfg.seed + r
        state = None
        for impl in cfg.impls:
            lib = layer_library(cfg.model, impl)
            torch.manual_seed(seed)
            model = NodeClassifier(cfg.model, lib, data.num_features, cfg.hidden, ds.num_classes, cfg.dropout,
                                   cfg.num_layers)
            if state is None:
                state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                model.load_state_dict(state, strict=True)  # identical start for every implementation
            torch.manual_seed(seed)  # identical dropout masks
            bar.set_postfix(impl=impl, run=r + 1)
            results[impl].append(train_once(model, data, cfg, on_epoch=lambda: bar.update(1)))
            if cfg.diagnose:  # how alike the node embeddings are after each layer (over-smoothing)
                from gnnkit.nn.diagnostics import smoothing_profile
                results[impl][-1]["diagnostics"] = smoothing_profile(model, data.x, data.edge_index)
    bar.close()
    summary = {}
    for impl, rs in results.items():
        accs = [x["test_acc"] for x in rs]
        summary[impl] = {
            "test_acc_mean": statistics.mean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "epoch_ms_median": statistics.median(x["epoch_ms"] for x in rs),
            "step_peak_mb_median": statistics.median(x["step_peak_mb"] for x in rs),
            "runs": rs,
        }
    # the processes that trained (torchrun): epoch times and results of 1 and P processes are not the same thing
    from gnnkit.distributed import world_size as distributed_world_size
    return {"config": asdict(cfg), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "world_size": distributed_world_size(), "summary": summary}


def format_table(res: dict) -> str:
    cfg = res["config"]
    lines = [f"{cfg['model']} on {cfg['dataset']}: {cfg['runs']} run(s), {cfg['epochs']} epochs, "
             f"test accuracy at the best validation epoch",
             f"{'implementation':<16}{'test acc (%)':>22}{'train epoch (ms)':>20}{'step peak (MiB)':>18}"]
    for impl, s in res["summary"].items():
        acc = f"{100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f}"
        lines.append(f"{impl:<16}{acc:>22}{s['epoch_ms_median']:>20.2f}{s['step_peak_mb_median']:>18.1f}")
    if "gnnkit" in res["summary"] and "pyg" in res["summary"]:
        ratio = res["summary"]["pyg"]["epoch_ms_median"] / max(res["summary"]["gnnkit"]["epoch_ms_median"], 1e-9)
        lines.append(f"gnnkit epoch speed-up over PyG: {ratio:.2f}x")
    for impl, s in res["summary"].items():
        diag = s["runs"][-1].get("diagnostics")
        if diag:
            lines.append(f"over-smoothing, {impl} (last run, eval mode): Dirichlet energy and MAD after each layer")
            lines.append(f"{'layer':<14}{'energy':>14}{'energy/norm':>14}{'MAD':>10}")
            lines += [f"{d['layer']:<14}{d['energy']:>14.4g}{d['rel_energy']:>14.4g}{d['mad']:>10.4f}" for d in diag]
    return "\n".join(lines)


def plot_diagnostics(res: dict, path: str) -> None:
    """Dirichlet energy against depth (log scale), one line per implementation, written atomically as PNG."""

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gnnkit._atomic import write_figure_atomic
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for impl, s in res["summary"].items():
        diag = s["runs"][-1].get("diagnostics") or []
        ax.plot(range(len(diag)), [max(d["rel_energy"], 1e-30) for d in diag], marker="o", label=impl)
    ax.set_yscale("log")
    ax.set_xlabel("layer (0 = input)")
    ax.set_ylabel("Dirichlet energy / mean squared norm")
    cfg = res["config"]
    ax.set_title(f"{cfg['model']} on {cfg['dataset']}, {cfg['num_layers']} layers", fontsize=9)
    ax.legend()
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=120)


