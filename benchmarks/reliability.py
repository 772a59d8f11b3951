"""Bad and careless input against gnnkit, case by case, each outcome classified:

* ``right``        — a result, equal to the reference (PyG's layer with the same weights, or the
                     known answer) where there is one;
* ``clear error``  — an exception of a user-facing type whose one-line message names the argument,
                     flag or file (the case says which text must appear);
* ``silent wrong`` — a result where an error was due, or a result that differs from the reference;
* ``traceback``    — any other exception, or a clear-error type whose message does not name the thing.

The goal is zero silent wrongs and zero tracebacks.  Writes ``benchmarks/results/reliability.json``
(one record per case) and prints the table that docs/reliability.md quotes.

    python benchmarks/reliability.py
"""
import contextlib
import io
import os
import shutil
import tempfile
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch
import torch_geometric.nn as pnn
from torch_geometric.data import Data

import gnnkit.nn as gnn
from gnnkit._atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
CLEAR = (ValueError, IndexError, TypeError, NotImplementedError, FileNotFoundError, PermissionError, SystemExit)
CASES = []


def case(area, what, expect="right", names=None, ref=None):
    """Register ``fn`` as a case. ``expect``: "right" or "error"; ``names``: text the error must contain;
    ``ref``: a callable giving the reference result for "right" cases."""
    def deco(fn):
        CASES.append(dict(area=area, what=what, expect=expect, names=names, fn=fn, ref=ref))
        return fn
    return deco


def _close(a, b):
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=1e-5, rtol=1e-4)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def classify(c):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = c["fn"]()
    except CLEAR as e:
        msg = (str(e) if not isinstance(e, SystemExit) else err.getvalue()).strip()
        if isinstance(e, SystemExit) and e.code in (0, None):
            return "silent wrong" if c["expect"] == "error" else "right", "exit 0"
        if c["expect"] != "error":
            return "traceback", f"{type(e).__name__}: {msg[:200]}"
        if c["names"] and c["names"] not in msg:
            return "traceback", f"{type(e).__name__} without {c['names']!r}: {msg[:200]}"
        return "clear error", msg.splitlines()[-1][:200] if msg else type(e).__name__
    except Exception as e:  # noqa: BLE001 - the point is to catch what slips through
        return "traceback", f"{type(e).__name__}: {str(e)[:200]} @ {traceback.format_tb(e.__traceback__)[-1][:120]}"
    if c["expect"] == "error":
        return "silent wrong", "returned a result"
    if c["ref"] is not None and not _close(out, c["ref"]()):
        return "silent wrong", "differs from the reference"
    return "right", ""


# ---------------------------------------------------------------------------- layers vs PyG
N, E = 12, 40
g0 = torch.Generator().manual_seed(0)
X = torch.randn(N, 5, generator=g0)
EI = torch.randint(0, N, (2, E), generator=g0)
LAYERS = {
    "GCNConv": lambda lib: lib.GCNConv(5, 4), "SAGEConv": lambda lib: lib.SAGEConv(5, 4),
    "GATConv": lambda lib: lib.GATConv(5, 2, heads=2), "GATv2Conv": lambda lib: lib.GATv2Conv(5, 2, heads=2),
    "GINConv": lambda lib: lib.GINConv(torch.nn.Linear(5, 4)),
    "GINEConv": lambda lib: lib.GINEConv(torch.nn.Linear(5, 4), edge_dim=3),
}
EA = torch.randn(E, 3, generator=g0)


def pair(name):
    torch.manual_seed(0)
    p, g = LAYERS[name](pnn), LAYERS[name](gnn)
    g.load_state_dict(p.state_dict(), strict=True)
    return p, g


def args(name, ei, ea=None):
    return (ei, EA if ea is None else ea) if name == "GINEConv" else (ei,)


for name in LAYERS:
    p, g = pair(name)

    def run(x, ei, g=g, name=name, **kw):
        return g(x, *args(name, ei), **kw)

    case("layers", f"{name}: float edge_index", "error", "edge_index")(lambda run=run: run(X, EI.float()))
    case("layers", f"{name}: edge_index [E, 2]", "error", "edge_index")(lambda run=run: run(X, EI.t().contiguous()))
    case("layers", f"{name}: negative node id", "error", "edge_index")(
        lambda run=run: run(X, torch.cat([EI, torch.tensor([[-1], [0]])], 1)))
    case("layers", f"{name}: node id >= N", "error", "edge_index")(
        lambda run=run: run(X, torch.cat([EI, torch.tensor([[N], [0]])], 1)))
    case("layers", f"{name}: x of the wrong width", "error", None)(lambda run=run: run(torch.randn(N, 7), EI))
    ref = (lambda p=p, name=name: p(X, *args(name, EI)))
    case("layers", f"{name}: int32 edge_index", ref=ref)(lambda run=run: run(X, EI.int()))
    case("layers", f"{name}: edge_index made under inference_mode", ref=ref)(
        lambda run=run: (lambda ei: run(X, ei))(_inference_copy(EI)))
    # the reference gets float64 edge features; gnnkit gets the float32 ones (it casts them, PyG would refuse)
    case("layers", f"{name}: float64 x", ref=lambda p=p, name=name: p.double()(X.double(),
                                                                                *args(name, EI, EA.double())))(
        lambda run=run, g=g: (g.double(), run(X.double(), EI))[1])
    case("layers", f"{name}: no edges", ref=lambda p=p, name=name: p.float()(X, *args(name, EI[:, :0], EA[:0])))(
        lambda g=g, name=name: g.float()(X, *args(name, EI[:, :0], EA[:0])))
    dup = torch.cat([EI, EI[:, :5], torch.tensor([[3, 3], [3, 3]])], 1)
    ea_dup = torch.cat([EA, EA[:5], EA[:2]])
    case("layers", f"{name}: duplicate edges and self-loops",
         ref=lambda p=p, name=name, dup=dup, ea=ea_dup: p.float()(X, *args(name, dup, ea)))(
        lambda g=g, name=name, dup=dup, ea=ea_dup: g.float()(X, *args(name, dup, ea)))


def _inference_copy(t):
    with torch.inference_mode():
        return t.clone()

# ---------------------------------------------------------------------------- the lectures' layers (issue 16)
LECTURE = {  # gnnkit-only layers: no PyG twin, so "right" means equal to the same model on the plain input
    "IDGNN": lambda: gnn.IDGNN(5, 8, 4).eval(),
    "PGNN": lambda: gnn.PGNN(5, 8).eval(),
    "GraphTransformerConv": lambda: gnn.GraphTransformerConv(5, heads=1).eval(),
}
BATCH = torch.zeros(N, dtype=torch.long)


def _lecture(name):
    torch.manual_seed(0)
    m = LECTURE[name]()
    return (lambda x, ei: m(x, ei, BATCH)) if name == "GraphTransformerConv" else m


for name in LECTURE:
    run = _lecture(name)
    case("lectures", f"{name}: float edge_index", "error", "edge_index")(lambda run=run: run(X, EI.float()))
    case("lectures", f"{name}: edge_index [E, 2]", "error", "edge_index")(lambda run=run: run(X, EI.t().contiguous()))
    case("lectures", f"{name}: negative node id", "error", "edge_index")(
        lambda run=run: run(X, torch.cat([EI, torch.tensor([[-1], [0]])], 1)))
    case("lectures", f"{name}: node id >= N", "error", "edge_index")(
        lambda run=run: run(X, torch.cat([EI, torch.tensor([[N], [0]])], 1)))
    case("lectures", f"{name}: x of the wrong width", "error", "x")(lambda run=run: run(torch.randn(N, 7), EI))
    case("lectures", f"{name}: int32 edge_index", ref=lambda run=run: run(X, EI))(lambda run=run: run(X, EI.int()))
    case("lectures", f"{name}: edge_index made under inference_mode", ref=lambda run=run: run(X, EI))(
        lambda run=run: run(X, _inference_copy(EI)))
    case("lectures", f"{name}: edge_index edited in place behind the version counter",
         ref=lambda name=name: _lecture(name)(X, EI.flip(0)))(
        lambda run=run: (run(X, _ei := EI.clone()), _ei.numpy().__setitem__(slice(None), EI.flip(0).numpy()),
                         run(X, _ei))[2])
    case("lectures", f"{name}: no edges")(lambda run=run: run(X, EI[:, :0]))
    case("lectures", f"{name}: duplicate edges and self-loops")(
        lambda run=run: run(X, torch.cat([EI, EI[:, :5], torch.tensor([[3, 3], [3, 3]])], 1)))


def _edited_behind_version(name):
    p, g = pair(name)
    ei = EI.clone()
    g(X, *args(name, ei))
    ei.numpy()[0, 0] = (int(ei[0, 0]) + 1) % N  # no version bump
    return g(X, *args(name, ei)), p(X, *args(name, ei.clone()))


for name in LAYERS:
    case("layers", f"{name}: edge_index edited through numpy after a call",
         ref=lambda name=name: _edited_behind_version(name)[1])(lambda name=name: _edited_behind_version(name)[0])

# ---------------------------------------------------------------------------- SAGE aggregations vs PyG
EI_SORTED = EI[:, torch.sort(EI[1], stable=True).indices]  # PyG's LSTM aggregation needs this order


def _sage_pair(aggr, **kw):
    torch.manual_seed(0)
    p = pnn.SAGEConv(5, 4, aggr=aggr)
    g = gnn.SAGEConv(5, 4, aggr=aggr, **kw)
    g.load_state_dict(p.state_dict(), strict=True)
    return p.eval(), g.eval()


for aggr in ("median", "softmax", "std", "powermean", ["mean", "max", "std"]):
    label = aggr if isinstance(aggr, str) else "[" + ", ".join(aggr) + "]"
    case("layers", f"SAGEConv(aggr={label})", ref=lambda aggr=aggr: _sage_pair(aggr)[0](X, EI))(
        lambda aggr=aggr: _sage_pair(aggr)[1](X, EI))
case("layers", "SAGEConv(aggr='lstm'): edge_index not sorted by destination (PyG refuses it too)", "error",
     "sort_edge_index")(lambda: _sage_pair("lstm")[1](X, EI))
case("layers", "SAGEConv(aggr='lstm', pyg_padding): edge_index sorted by destination",
     ref=lambda: _sage_pair("lstm")[0](X, EI_SORTED))(
    lambda: _sage_pair("lstm", aggr_kwargs={"pyg_padding": True})[1](X, EI_SORTED))
case("layers", "SAGEConv(aggr='lstm', require_sorted=False): unsorted = input order within each destination",
     ref=lambda: _sage_pair("lstm", aggr_kwargs={"pyg_padding": True})[1](X, EI_SORTED))(
    lambda: _sage_pair("lstm", aggr_kwargs={"pyg_padding": True, "require_sorted": False})[1](X, EI))

# ---------------------------------------------------------------------------- splits
from gnnkit.linkpred import InductiveLinkSplit, TransductiveLinkSplit, check_leakage, negative_sampling  # noqa: E402


def _und(n=120, e=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    return Data(edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=n)


def _no_reverse_leak(split):
    tr, va, te = split(_und())
    for d in (tr, va, te):
        msg = set(map(tuple, d.edge_index.t().tolist()))
        pos = d.edge_label_index[:, d.edge_label == 1]
        if any((v, u) in msg or (u, v) in msg for u, v in pos.t().tolist()):
            return "leak"
    return "no leak"


case("splits", "disjoint_train_ratio=0.001 rounds to 0 (600 edges, debug=True)", "error", "disjoint_train_ratio")(
    lambda: TransductiveLinkSplit(0.1, 0.2, is_undirected=True, disjoint_train_ratio=0.001, seed=0, debug=True)(
        Data(edge_index=torch.randint(0, 200, (2, 600), generator=torch.Generator().manual_seed(0)),
             num_nodes=200)))
case("splits", "num_val=0.5, num_test=0.5", "error", "num_")(
    lambda: TransductiveLinkSplit(0.5, 0.5, seed=0)(_und()))
case("splits", "transductive default on a graph stored both ways", ref=lambda: "no leak")(
    lambda: _no_reverse_leak(TransductiveLinkSplit(seed=0)))
case("splits", "inductive default on a graph stored both ways", ref=lambda: "no leak")(
    lambda: _no_reverse_leak(InductiveLinkSplit(seed=0)))
case("splits", "a float edge_index with fractional ids", "error", "integer")(
    lambda: TransductiveLinkSplit(seed=0)(Data(edge_index=_und().edge_index.float() + 0.7, num_nodes=120)))
case("splits", "an edge_index tensor instead of a Data", "error", "Data")(
    lambda: InductiveLinkSplit(seed=0)(_und().edge_index))
case("splits", "a Data without edge_index", "error", "edge_index")(
    lambda: TransductiveLinkSplit(seed=0)(Data(num_nodes=10)))
case("splits", "InductiveLinkSplit(num_val=0)", ref=lambda: 0)(
    lambda: InductiveLinkSplit(num_val=0, seed=0)(_und())[1].edge_label.numel())


def _fooled():
    tr, va, te = TransductiveLinkSplit(seed=0)(_und(seed=1))
    u, v = va.edge_label_index[:, va.edge_label == 1][:, 0].tolist()
    bad = tr.clone()
    bad.edge_index = torch.cat([tr.edge_index, torch.tensor([[v], [u]])], 1)
    return check_leakage(bad, va, te).ok


case("splits", "check_leakage with the reverse of a val positive added to train messages", ref=lambda: False)(_fooled)
case("splits", "negative_sampling, one edge, num_nodes=1e8", ref=lambda: (2, 100))(
    lambda: tuple(negative_sampling(torch.tensor([[0], [1]]), 10 ** 8, 100, seed=0).shape))
case("splits", "negative_sampling, one edge, num_nodes=2**31", ref=lambda: (2, 100))(
    lambda: tuple(negative_sampling(torch.tensor([[0], [1]]), 2 ** 31, 100, seed=0).shape))
case("splits", "negative_sampling asks for more pairs than exist", "error", "num_neg_samples")(
    lambda: negative_sampling(torch.tensor([[0], [1]]), 3, 100, seed=0))

# ---------------------------------------------------------------------------- saved files
from gnnkit.cli import main  # noqa: E402
from gnnkit.linkpred.io import load_split  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="gnnkit-reliability-"))
SPLIT, OTHER = TMP / "a", TMP / "b"


def _quiet_main(argv):
    """``gnnkit ARGV``; a non-zero exit code becomes SystemExit (its message is on stderr)."""
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    if rc:
        raise SystemExit(rc)
    return rc


def _fresh_split():
    shutil.rmtree(SPLIT, ignore_errors=True)
    _quiet_main(["split", "Cora", "--seed", "1", "--out", str(SPLIT)])
    if not OTHER.exists():
        _quiet_main(["split", "Cora", "--seed", "2", "--out", str(OTHER)])


def _corrupt(edit):
    def run():
        _fresh_split()
        edit()
        return load_split(SPLIT)
    return run


def _labels_to_one():
    raw = torch.load(SPLIT / "test.pt", weights_only=True)
    raw["edge_label"] = torch.ones_like(raw["edge_label"])
    torch.save(raw, SPLIT / "test.pt")


def _bitflip():
    b = bytearray((SPLIT / "train.pt").read_bytes())
    b[len(b) // 2] ^= 0xFF
    (SPLIT / "train.pt").write_bytes(bytes(b))


def _swap():
    a, b = (SPLIT / "train.pt").read_bytes(), (SPLIT / "val.pt").read_bytes()
    (SPLIT / "train.pt").write_bytes(b)
    (SPLIT / "val.pt").write_bytes(a)


case("saved files", "val.pt from another seed", "error", "val.pt")(
    _corrupt(lambda: shutil.copy(OTHER / "val.pt", SPLIT / "val.pt")))
case("saved files", "train.pt and val.pt swapped", "error", ".pt")(_corrupt(_swap))
case("saved files", "every test label set to 1", "error", "test.pt")(_corrupt(_labels_to_one))
case("saved files", "one byte flipped in train.pt", "error", "train.pt")(_corrupt(_bitflip))
case("saved files", "val.pt truncated", "error", "val.pt")(
    _corrupt(lambda: (SPLIT / "val.pt").write_bytes((SPLIT / "val.pt").read_bytes()[:100])))
case("saved files", "test.pt replaced by a non-tensor pickle", "error", "test.pt")(
    _corrupt(lambda: torch.save([1, 2, 3], SPLIT / "test.pt")))
case("saved files", "manifest.json truncated", "error", "manifest.json")(
    _corrupt(lambda: (SPLIT / "manifest.json").write_text("{")))
case("saved files", "manifest.json deleted", "error", "manifest.json")(
    _corrupt(lambda: (SPLIT / "manifest.json").unlink()))


def _resplit_keeps_user_files():
    _fresh_split()
    (SPLIT / "results.json").write_text("{}")
    (SPLIT / "notes").mkdir()
    _quiet_main(["split", "Cora", "--seed", "3", "--out", str(SPLIT)])
    return (SPLIT / "results.json").exists() and (SPLIT / "notes").is_dir()


case("saved files", "re-split into a folder holding the user's results.json and notes/", ref=lambda: True)(
    _resplit_keeps_user_files)
case("saved files", "gnnkit linkpred --split with a swapped val.pt", "error", "val.pt")(
    lambda: (_fresh_split(), shutil.copy(OTHER / "val.pt", SPLIT / "val.pt"),
             _quiet_main(["linkpred", "Cora", "--split", str(SPLIT), "--epochs", "1"])))


def _results_then(edit):
    def run():
        out = TMP / "train.json"
        _quiet_main(["train", "--runs", "1", "--epochs", "1", "--out", str(out)])
        edit(out)
        return _quiet_main(["verify", str(out)])
    return run


case("saved files", "gnnkit train --out JSON with one byte changed, then gnnkit verify", "error", "train.json")(
    _results_then(lambda p: p.write_bytes(p.read_bytes().replace(b"{", b"[", 1))))
case("saved files", "gnnkit train --out JSON truncated, then gnnkit verify", "error", "train.json")(
    _results_then(lambda p: p.write_bytes(p.read_bytes()[:40])))
case("saved files", "gnnkit train --out JSON intact, then gnnkit verify", ref=lambda: 0)(_results_then(lambda p: None))
case("saved files", "gnnkit verify on a split with a flipped byte", "error", "train.pt")(
    lambda: (_fresh_split(), _bitflip(), _quiet_main(["verify", str(SPLIT)])))


# ---------------------------------------------------------------------------- data loading
from gnnkit.data import BUNDLED_ROOT, load_dataset  # noqa: E402


def _cora_copy(edit, with_sums=True):
    def run():
        root = Path(tempfile.mkdtemp(dir=TMP))
        shutil.copytree(BUNDLED_ROOT / "planetoid" / "Cora" / "raw", root / "planetoid" / "Cora" / "raw")
        if with_sums:
            shutil.copy(BUNDLED_ROOT / "SHA256SUMS", root / "SHA256SUMS")
        edit(root)
        return load_dataset("Cora", root=str(root))[0].num_nodes
    return run


def _truncate_index(root):
    f = root / "planetoid" / "Cora" / "raw" / "ind.cora.test.index"
    f.write_text("\n".join(f.read_text().splitlines()[:500]) + "\n")


def _corrupt_processed(root):
    load_dataset("Cora", root=str(root))
    for f in (root / "planetoid" / "Cora" / "processed").glob("data.pt"):
        f.write_bytes(f.read_bytes()[:64])


case("data", "ind.cora.test.index cut to 500 lines (SHA256SUMS present)", "error", "ind.cora.test.index")(
    _cora_copy(_truncate_index))
case("data", "processed/data.pt truncated", "error", "processed")(_cora_copy(_corrupt_processed, with_sums=False))
case("data", "a raw file missing", "error", "ind.cora")(
    _cora_copy(lambda r: (r / "planetoid" / "Cora" / "raw" / "ind.cora.tx").unlink(), with_sums=False))
case("data", "unknown dataset name", "error", "Cora")(lambda: load_dataset("Coraa"))


def _halve(path):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:len(lines) // 2]) + "\n")


def _mutag_copy(part):
    def run():
        root = Path(tempfile.mkdtemp(dir=TMP))
        shutil.copytree(BUNDLED_ROOT / "tu" / "MUTAG" / "raw", root / "tu" / "MUTAG" / "raw")
        _halve(root / "tu" / "MUTAG" / "raw" / f"MUTAG_{part}.txt")
        ds = load_dataset("MUTAG", root=str(root))
        return len(ds), ds[len(ds) - 1]
    return run


case("data", "ind.cora.test.index cut to 500 lines, no SHA256SUMS", "error", "ind.cora.test.index")(
    _cora_copy(_truncate_index, with_sums=False))
for part in ("graph_labels", "node_labels", "A"):
    case("data", f"MUTAG_{part}.txt cut in half, no SHA256SUMS", "error", "MUTAG")(_mutag_copy(part))

# ---------------------------------------------------------------------------- command line
AFILE = TMP / "afile"
AFILE.write_text("")
for argv, flag in [
    (["split", "Cora", "--neg-ratio", "inf", "--out", f"{TMP}/s"], "--neg-ratio"),
    (["split", "Cora", "--out", ""], "--out"),
    (["split", "Cora", "--out", f"{AFILE}/x"], "--out"),
    (["split", "Cora", "--out", str(AFILE)], "--out"),
    (["linkpred", "Cora", "--device", "bogus"], "--device"),
    (["linkpred", "Cora", "--device", "cuda"], "--device"),
    (["linkpred", "Cora", "--seed", str(2 ** 70)], "--seed"),
    (["linkpred", "Cora", "--hidden", "0"], "--hidden"),
    (["linkpred", "Cora", "--batch-size", "-1"], "--batch-size"),
    (["linkpred", "Cora", "--neg-ratio", "nan"], "--neg-ratio"),
    (["linkpred", "Cora", "--json", str(TMP)], "--json"),
    (["train", "--out", str(TMP)], "--out"),
    (["train", "--out", f"{AFILE}/r.json"], "--out"),
    (["train", "--runs", "0"], "--runs"),
    (["profile", "--out", ""], "--out"),
    (["profile", "--device", "cuda:3"], "--device"),
    (["vq", "sample", "x", "--out", str(AFILE)], "--out"),
    (["vq", "train", "community-small", "--device", "bogus"], "--device"),
    (["verify", f"{TMP}/missing"], "missing"),
    (["ogb", "ogbg-molhivv"], "ogbg-molhiv"),
    (["ogb", "ogbg-molhiv", "--model", "gat"], "--model"),
    (["ogb", "ogbg-molhiv", "--runs", "0"], "--runs"),
    (["train", "--model", "transformer"], "--model"),
    (["train", "--model", "idgnn-fast", "--epochs", "0"], "--epochs"),
    (["split", "Cora", "--supervision-ratio", "1.5", "--out", str(TMP / "s")], "--supervision-ratio"),
    (["vq", "train", "community-small", "--epochs", "0"], "--epochs"),
    (["ogb", "ogbg-molhiv", "--model", "gt", "--hidden", "7"], "--hidden"),
    (["ogb", "ogbg-molhiv", "--model", "gt", "--layers", "pyg"], "--layers"),
    (["train", "--num-layers", "0"], "--num-layers"),
    (["train", "--diagnose", str(TMP)], "--diagnose"),
]:
    case("cli", "gnnkit " + " ".join(a if a else "''" for a in argv), "error", flag)(
        lambda argv=argv: _quiet_main(argv))


def main_() -> None:
    import argparse
    ap = argparse.ArgumentParser(description="gnnkit against bad input: one line per case, then the table")
    ap.add_argument("--out", default=str(RESULTS / "reliability.json"), help="JSON path (written atomically)")
    out_path = Path(ap.parse_args().out)
    torch.manual_seed(0)
    records = []
    for c in CASES:
        outcome, detail = classify(c)
        records.append(dict(area=c["area"], case=c["what"], expected=c["expect"], outcome=outcome, detail=detail))
        print(f"{outcome:13s} {c['area']:12s} {c['what']}" + (f"  [{detail}]" if outcome in ("silent wrong",
                                                                                              "traceback") else ""))
    shutil.rmtree(TMP, ignore_errors=True)
    by_area = {}
    for r in records:
        by_area.setdefault(r["area"], Counter())[r["outcome"]] += 1
    total = Counter(r["outcome"] for r in records)
    cols = ("right", "clear error", "silent wrong", "traceback")
    lines = ["| area | cases | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for area, cnt in by_area.items():
        lines.append(f"| {area} | {sum(cnt.values())} | " + " | ".join(str(cnt[c]) for c in cols) + " |")
    lines.append(f"| **all** | **{len(records)}** | " + " | ".join(f"**{total[c]}**" for c in cols) + " |")
    print("\n".join(lines))
    write_json_atomic({"torch": torch.__version__, "cases": records, "totals": dict(total),
                       "table": "\n".join(lines)}, out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main_()
