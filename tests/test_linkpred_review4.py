"""Link prediction and saved files: findings of the read-only black-box review of 2026-12-05 (fourth round), each
failing on the code before it: flags, ratios, seeds and node counts checked by name; `gnnkit verify` on a split
without its manifest; a Hits@K that cannot be ranked said so; a killed write's temporary copy swept."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from gnnkit._atomic import atomic_write
from gnnkit.cli import main
from gnnkit.integrity import verify
from gnnkit.linkpred import (
    InductiveLinkSplit,
    NegativeSampler,
    TransductiveLinkSplit,
    check_leakage,
    negative_sampling,
    train_negative_sampler,
)
from gnnkit.linkpred.io import save_split
from gnnkit.linkpred.metrics import evaluate, too_few_negatives


def _data():
    return Data(edge_index=torch.randint(0, 40, (2, 200), generator=torch.Generator().manual_seed(0)), num_nodes=40)


@pytest.mark.parametrize("cls", [TransductiveLinkSplit, InductiveLinkSplit])
@pytest.mark.parametrize("arg", ["is_undirected", "add_negative_train_samples", "debug"])
def test_split_flags_refuse_strings(cls, arg):
    """bool("no") is True: is_undirected="no" made a directed graph undirected (7 of 188 edges merged away)."""
    with pytest.raises(ValueError, match=f"{arg} must be True or False, got 'no'"):
        cls(**{arg: "no"}, seed=0)
    cls(**{arg: False}, seed=0)
    with pytest.raises(ValueError, match="force_undirected must be True or False"):
        NegativeSampler(torch.tensor([[0], [1]]), 5, 2, force_undirected="no")


@pytest.mark.parametrize("ratio", [float("inf"), float("nan"), -1, "1"])
def test_negative_ratios_must_be_finite_numbers(ratio):
    for cls in (TransductiveLinkSplit, InductiveLinkSplit):
        with pytest.raises(ValueError, match="neg_sampling_ratio must be a number"):
            cls(neg_sampling_ratio=ratio, seed=0)
    tr, _, _ = TransductiveLinkSplit(seed=0)(_data())
    with pytest.raises(ValueError, match="train_negative_sampler: neg_sampling_ratio must be a number"):
        train_negative_sampler(tr, neg_sampling_ratio=ratio)


@pytest.mark.parametrize("seed", ["a", 2 ** 70, 1.5, True])
def test_bad_seeds_are_named(seed):
    """seed=1.5 gave seed 1's split without a word; "a" and 2**70 raised int()'s / torch's errors."""
    with pytest.raises(ValueError, match="seed must"):
        TransductiveLinkSplit(seed=seed)
    with pytest.raises(ValueError, match="seed must"):
        negative_sampling(torch.tensor([[0], [1]]), 5, 2, seed=seed)


def test_numpy_seeds_and_counts_are_ints():
    data = _data()
    a = TransductiveLinkSplit(seed=np.int64(3))(data)
    b = TransductiveLinkSplit(seed=3)(data)
    assert all(torch.equal(x.edge_label_index, y.edge_label_index) for x, y in zip(a, b))
    assert negative_sampling(torch.tensor([[0], [1]]), 5, np.int64(3), seed=0).shape == (2, 3)


def test_negative_sampling_node_counts_and_batch_are_checked():
    ei = torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match="num_nodes=2.9"):  # was read as 2
        negative_sampling(ei, 2.9, 1)
    with pytest.raises(ValueError, match="do not fit int64"):  # was a raw IndexError (pair ids overflowed)
        negative_sampling(ei, 2 ** 32, 1)
    assert negative_sampling(ei, 2 ** 31, 1, seed=0).shape == (2, 1)
    with pytest.raises(ValueError, match="negative graph id"):  # was bincount's RuntimeError
        negative_sampling(ei, 40, 3, batch=-torch.ones(40, dtype=torch.long))
    with pytest.raises(ValueError, match="batch must be a 1-D integer tensor"):
        negative_sampling(ei, 40, 3, batch=torch.zeros(40))


def test_check_leakage_names_tensors_given_for_splits():
    ei = torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match="train_data must be a torch_geometric Data"):
        check_leakage(ei, ei, ei)


def test_verify_calls_a_split_without_its_manifest_bad(tmp_path):
    """A split folder whose manifest.json was deleted was "unchecked" and exit 0 (load_split refuses it)."""
    out = tmp_path / "s"
    splits = TransductiveLinkSplit(seed=0)(_data())
    save_split(out, splits, {"dataset": "random"})
    (out / "manifest.json").unlink()
    assert any(f.status == "bad" and "no manifest.json" in f.detail for f in verify(out))
    assert main(["verify", str(out)]) == 1
    (out / "manifest.json.sha256").unlink()  # three train/val/test.pt alone (PyG's ZINC keeps such): no split
    assert not any(f.status == "bad" for f in verify(out))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_killed_write_s_temporary_copy_is_swept_by_the_next_write(tmp_path):
    """A split write killed at its folder swap left `.s.tmp-*` (a whole copy of the split) for good.  Swept now: the
    temporary names of a process that is gone, untouched for an hour; a live writer's, a recent one and a user's
    file of another shape stay."""
    out = tmp_path / "s"
    splits = TransductiveLinkSplit(seed=0)(_data())
    dead, live = _dead_pid(), os.getppid()
    old = time.time() - 2 * 3600
    names = []
    for pid, age in ((dead, old), (live, old), (dead, None)):
        tag = f"{pid}-{'a' if age else 'r'}bcdefgh"
        d = tmp_path / f".s.tmp-{tag}"
        d.mkdir()
        (d / "train.pt").write_bytes(b"x")
        f = tmp_path / f".r.json.tmp-{tag}.tmp"
        f.write_bytes(b"{")
        names += [d.name, f.name]
        if age:
            os.utime(d, (age, age))
            os.utime(f, (age, age))
    mine = tmp_path / f".s.tmp-{dead}-mine"  # not a temporary name gnnkit makes
    mine.write_bytes(b"keep")
    os.utime(mine, (old, old))
    save_split(out, splits, {"dataset": "random"})
    atomic_write(tmp_path / "r.json", b"{}")
    left = set(p.name for p in tmp_path.iterdir())
    gone = {f".s.tmp-{dead}-abcdefgh", f".r.json.tmp-{dead}-abcdefgh.tmp"}
    assert left == ({"s", "r.json", mine.name} | set(names)) - gone, left


def test_a_hits_at_k_above_the_negatives_is_said_not_computed(tmp_path, capsys):
    assert too_few_negatives(10, [5, 10, 20]) == [20]
    m = evaluate(torch.rand(4), torch.rand(10), ks=[5, 20])
    assert "hits@5" in m and "hits@20" not in m
    js = tmp_path / "k.json"
    assert main(["linkpred", "Cora", "--ks", "20,5000", "--epochs", "1", "--no-progress", "--json", str(js)]) == 0
    err = capsys.readouterr().err
    assert "note: test hits@5000 not computed" in err and "note: val hits@5000 not computed" in err
    assert set(json.loads(js.read_text())["not_computed"]) == {"val", "test"}


def test_verify_does_not_call_a_split_good_when_nothing_vouches_for_its_manifest(tmp_path):
    """With manifest.json.sha256 deleted, an edited setting in manifest.json passed `gnnkit verify` as "ok"
    (docs/reliability.md: no record is "unchecked", never reported as good)."""
    out = tmp_path / "s"
    save_split(out, TransductiveLinkSplit(seed=0)(_data()), {"dataset": "random", "seed": 0})
    assert [f.status for f in verify(out)] == ["ok"]
    (out / "manifest.json.sha256").unlink()
    meta = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(meta, seed=7)))
    found = verify(out)
    assert [f.status for f in found] == ["unchecked"] and "no manifest.json.sha256" in found[0].detail


def test_too_few_negatives_names_bad_arguments():
    for args, arg in (((-1, [5]), "num_negatives"), (("x", [5]), "num_negatives"), ((10, "20"), "ks"),
                      ((10, [0]), "ks")):
        with pytest.raises(ValueError, match=f"too_few_negatives: {arg}"):
            too_few_negatives(*args)
