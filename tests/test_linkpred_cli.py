"""`gnnkit split` / `gnnkit linkpred`: files, manifest, atomic writes, determinism."""
import json
import os

import pytest
import torch

from gnnkit.cli import main


def test_split_writes_three_splits_and_manifest(tmp_path):
    out = tmp_path / "cora"
    assert main(["split", "Cora", "--mode", "transductive", "--neg", "uniform", "--seed", "3",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "manifest.json.sha256", "test.pt", "train.pt",
                                                    "val.pt"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 3 and man["leakage"]["ok"] and man["undirected"] is True
    assert man["sizes"]["unique_edges"] == 5278
    tr = torch.load(out / "train.pt", weights_only=True)
    assert tr["edge_label"].numel() == man["sizes"]["train_supervision"] + man["sizes"]["train_negatives"]
    from gnnkit.data import load_dataset
    from gnnkit.linkpred import check_leakage
    from gnnkit.linkpred.io import load_split
    data = load_dataset("Cora")[0]
    a, b, c, m2 = load_split(out, full=data)
    assert torch.equal(a.x, data.x) and check_leakage(a, b, c, strict=True).ok
    # same seed -> identical files' content
    out2 = tmp_path / "cora2"
    assert main(["split", "Cora", "--seed", "3", "--out", str(out2)]) == 0
    for f in ("train.pt", "val.pt", "test.pt"):
        x, y = torch.load(out / f, weights_only=True), torch.load(out2 / f, weights_only=True)
        assert all(torch.equal(x[k], y[k]) for k in x if isinstance(x[k], torch.Tensor))


def test_split_inductive_dataset_and_errors(tmp_path, capsys):
    out = tmp_path / "mutag"
    assert main(["split", "MUTAG", "--mode", "inductive", "--neg", "hard", "--out", str(out)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["multi_graph"] and man["leakage"]["inductive"] and man["sizes"]["cross_part_edges_dropped"] == 0
    assert main(["split", "MUTAG", "--mode", "transductive", "--out", str(tmp_path / "x")]) == 2
    assert "--mode inductive" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # refuses to overwrite a folder that is not a split
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["split", "Cora", "--out", str(other)]) == 2
    assert (other / "keep.txt").read_text() == "mine"


def test_split_is_atomic_when_interrupted(tmp_path, monkeypatch):
    out = tmp_path / "s"
    assert main(["split", "Cora", "--seed", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import gnnkit.linkpred.io as io
    real_save, calls = torch.save, []

    def dying_save(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted half-way through writing
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(io.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        main(["split", "Cora", "--seed", "2", "--out", str(out)])
    monkeypatch.setattr(io.torch, "save", real_save)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old split intact
    assert sorted(os.listdir(tmp_path)) == ["s"]  # no temporary leftovers


def test_linkpred_trains_and_is_deterministic(tmp_path):
    res = []
    for i in range(2):
        j = tmp_path / f"r{i}.json"
        assert main(["linkpred", "Cora", "--model", "gcn", "--decoder", "dot", "--epochs", "6",
                     "--eval-every", "3", "--hidden", "32", "--out-channels", "16", "--no-progress",
                     "--json", str(j)]) == 0
        res.append(json.loads(j.read_text()))
    assert res[0]["test"] == res[1]["test"] and res[0]["history"] == res[1]["history"]
    t = res[0]["test"]
    assert {"auc", "ap", "hits@20"} <= set(t) and 0.5 < t["auc"] <= 1.0
    assert res[0]["history"][-1]["loss"] < res[0]["history"][0]["loss"]
    assert res[0]["split"]["leakage"]["ok"]


def test_linkpred_on_saved_split_with_sage_mlp(tmp_path):
    out = tmp_path / "s"
    assert main(["split", "Cora", "--num-val", "0.05", "--num-test", "0.1", "--out", str(out)]) == 0
    j = tmp_path / "r.json"
    assert main(["linkpred", "Cora", "--split", str(out), "--model", "sage", "--decoder", "mlp",
                 "--epochs", "3", "--hidden", "16", "--out-channels", "16", "--no-progress",
                 "--json", str(j)]) == 0
    r = json.loads(j.read_text())
    assert r["split"]["split"] == str(out) and r["config"]["model"] == "sage"
    assert main(["linkpred", "MUTAG", "--split", str(out), "--epochs", "1", "--no-progress"]) == 2


def test_featureless_sage_mlp_dropout_is_deterministic_and_reports_every_epoch():
    """The ogbl-ddi recipe (node embeddings, SAGE + MLP decoder, dropout, mini-batches) on a
    small random graph: two runs with one seed agree bit for bit; ``on_epoch`` sees each epoch."""
    from torch_geometric.data import Data

    from gnnkit.linkpred import TransductiveLinkSplit
    from gnnkit.linkpred.train import LinkPredConfig, fit
    g = torch.Generator().manual_seed(0)
    data = Data(edge_index=torch.randint(0, 120, (2, 900), generator=g), num_nodes=120)
    tr, va, te = TransductiveLinkSplit(0.1, 0.1, is_undirected=True, seed=0)(data)
    cfg = LinkPredConfig(model="sage", decoder="mlp", decoder_layers=2, clip_grad=1.0, hidden=16, out_channels=16,
                         dropout=0.5, lr=0.01, epochs=3, batch_size=64, select="auc", ks=(10,))
    runs = []
    for _ in range(2):
        seen = []
        res = fit(tr, va, te, cfg, progress=False, on_epoch=lambda r: seen.append(len(r.history)))
        runs.append(res)
        assert seen == [1, 2, 3]
    assert runs[0].history == runs[1].history and runs[0].test == runs[1].test
    assert runs[0].history[-1]["loss"] < runs[0].history[0]["loss"]


def test_fit_refuses_a_bipartite_split():
    """Review finding: fit ran on a bipartite split as if it were homogeneous (destination j read as source
    node j: shared embedding row and messages) and reported numbers."""
    from torch_geometric.data import Data

    from gnnkit.linkpred import TransductiveLinkSplit
    from gnnkit.linkpred.train import LinkPredConfig, fit
    g = torch.Generator().manual_seed(0)
    ui = torch.stack([torch.randint(0, 30, (200,), generator=g), torch.randint(0, 20, (200,), generator=g)])
    tr, va, te = TransductiveLinkSplit(0.1, 0.2, seed=0)(Data(edge_index=ui, num_src=30, num_dst=20, num_nodes=50))
    with pytest.raises(ValueError, match="bipartite.*fix: give the two node types one id space"):
        fit(tr, va, te, LinkPredConfig(epochs=1, hidden=8, out_channels=4, ks=(5,)), progress=False)


@pytest.mark.parametrize("flag,value,field", [("--decoder-layers", "0", "decoder_layers"),
                                              ("--eval-every", "0", "eval_every"), ("--layers", "0", "num_layers")])
def test_bad_training_flags_are_named_as_typed(flag, value, field, capsys):
    assert main(["linkpred", "Cora", flag, value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert flag in err and field not in err


def test_linkpred_refuses_zero_negatives_before_training(capsys):
    """Review finding: ``gnnkit linkpred --neg-ratio 0`` trained, then stopped on "no negative scores: ROC-AUC and
    AP need both classes", naming no flag; every metric needs the held-out negatives."""
    with pytest.raises(SystemExit) as e:
        main(["linkpred", "Cora", "--neg-ratio", "0", "--no-progress"])
    assert e.value.code == 2 and "--neg-ratio: 0 must be > 0" in capsys.readouterr().err


def test_resplit_keeps_the_users_other_files(tmp_path):
    """Regression (issue 13.3): re-splitting into an existing split folder replaced the whole folder and
    deleted what the user had put there; now only gnnkit's four files change."""
    out = tmp_path / "s"
    assert main(["split", "Cora", "--seed", "1", "--out", str(out)]) == 0
    (out / "results.json").write_text('{"auc": 0.9}')
    (out / "notes").mkdir()
    (out / "notes" / "run.txt").write_text("kept")
    old_train = (out / "train.pt").read_bytes()
    assert main(["split", "Cora", "--seed", "2", "--out", str(out)]) == 0
    assert (out / "results.json").read_text() == '{"auc": 0.9}'
    assert (out / "notes" / "run.txt").read_text() == "kept"
    assert (out / "train.pt").read_bytes() != old_train
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["s"]


def test_an_overwrite_killed_between_renames_is_restored(tmp_path, monkeypatch):
    """Regression (issue 13.3): without an atomic exchange, a kill between moving the old split aside and
    moving the new one in left nothing at --out; the next write or load now restores the old split."""
    import gnnkit.linkpred.io as io
    out = tmp_path / "s"
    assert main(["split", "Cora", "--seed", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    real_rename, calls = os.rename, []

    def dying_rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:  # the second rename: the new split into place
            raise KeyboardInterrupt
        return real_rename(a, b)

    monkeypatch.setattr(io.os, "rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        main(["split", "Cora", "--seed", "2", "--out", str(out)])
    monkeypatch.setattr(io.os, "rename", real_rename)
    assert not out.exists()  # the state a SIGKILL at that point leaves
    a, b, c, man = io.load_split(out)  # load puts the old split back
    assert man["seed"] == 1 and {p.name: p.read_bytes() for p in out.iterdir()} == before


def _resha(out, name):
    import hashlib
    man = json.loads((out / "manifest.json").read_text())
    man["sha256"][name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    text = json.dumps(man)
    (out / "manifest.json").write_text(text)  # and its own side file: the deeper checks are what is tested
    (out / "manifest.json.sha256").write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  manifest.json\n")


def test_saved_splits_are_verified_on_load(tmp_path, capsys):
    """Regression (issue 13.4): a val.pt from another seed, swapped files, edited labels, bit flips,
    truncation, bad tensors — `gnnkit linkpred --split` used to train on them with exit 0."""
    from gnnkit.linkpred.io import SplitFileError, load_split
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["split", "Cora", "--seed", "1", "--out", str(a)]) == 0
    assert main(["split", "Cora", "--seed", "2", "--out", str(b)]) == 0
    load_split(a)  # intact: loads (and passes its leakage check)
    pristine = {p.name: p.read_bytes() for p in a.iterdir()}

    def restore():
        for name, data in pristine.items():
            (a / name).write_bytes(data)

    def fails(match):
        with pytest.raises(SplitFileError, match=match):
            load_split(a)
        restore()

    (a / "val.pt").write_bytes((b / "val.pt").read_bytes())
    fails(r"val\.pt: its SHA-256 does not match")
    (a / "train.pt").write_bytes(pristine["val.pt"])
    (a / "val.pt").write_bytes(pristine["train.pt"])
    fails(r"train\.pt: its SHA-256 does not match")
    raw = torch.load(a / "test.pt", weights_only=True)
    raw["edge_label"] = torch.ones_like(raw["edge_label"])
    torch.save(raw, a / "test.pt")
    fails(r"test\.pt: its SHA-256")
    flipped = bytearray(pristine["train.pt"])
    flipped[len(flipped) // 2] ^= 0xFF
    (a / "train.pt").write_bytes(bytes(flipped))
    fails(r"train\.pt: its SHA-256")
    (a / "val.pt").write_bytes(pristine["val.pt"][:100])
    fails(r"val\.pt: its SHA-256")
    (a / "val.pt").write_bytes(pristine["val.pt"][:100])
    _resha(a, "val.pt")  # even with a matching manifest a truncated file is named
    fails(r"val\.pt: not a readable split file")
    for edit, match in ((lambda r: r.__setitem__("edge_index", r["edge_index"].float()), "integer"),
                        (lambda r: r.pop("edge_index"), "no edge_index tensor"),
                        (lambda r: r["edge_label_index"].__setitem__((0, 0), 10 ** 6), "outside the split"),
                        (lambda r: r["edge_label"].__setitem__(0, 7.0), "other than 0 and 1")):
        raw = torch.load(a / "train.pt", weights_only=True)
        edit(raw)
        torch.save(raw, a / "train.pt")
        _resha(a, "train.pt")
        fails(match)
    torch.save([1, 2, 3], a / "test.pt")
    _resha(a, "test.pt")
    fails(r"test\.pt: holds a list")
    (a / "manifest.json").write_text("{not json")
    fails(r"manifest\.json: its SHA-256 is not the one manifest\.json\.sha256 recorded")
    (a / "manifest.json").write_text("{not json")
    (a / "manifest.json.sha256").unlink()  # a split from before the side file
    fails(r"manifest\.json: not readable JSON")
    # the command: one line naming the file, non-zero exit, before any training
    (a / "val.pt").write_bytes((b / "val.pt").read_bytes())
    assert main(["linkpred", "Cora", "--split", str(a), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "val.pt" in err[0] and "SHA-256" in err[0]


def test_a_new_split_folder_gets_the_usual_permissions(tmp_path):
    """Review finding: a first write left the folder at mkdtemp's 0700 (unreadable for the group)."""
    umask = os.umask(0o022)
    try:
        assert main(["split", "Cora", "--out", str(tmp_path / "s")]) == 0
    finally:
        os.umask(umask)
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o755


def test_a_split_with_another_graph_is_refused_by_name(tmp_path, capsys):
    """Review finding: `gnnkit linkpred Cora --split <a MUTAG split>` failed with a raw IndexError (the split's
    ids indexed Cora's features before the dataset check); load_split(full=<another graph>) did too."""
    from torch_geometric.data import Data

    from gnnkit.linkpred.io import SplitFileError, load_split
    out = tmp_path / "mutag"
    assert main(["split", "MUTAG", "--mode", "inductive", "--out", str(out), "--seed", "0"]) == 0
    capsys.readouterr()
    assert main(["linkpred", "Cora", "--split", str(out), "--epochs", "1", "--no-progress"]) == 2
    assert "made from 'MUTAG', not 'Cora'" in capsys.readouterr().err
    with pytest.raises(SplitFileError, match="outside full's 5 nodes"):
        load_split(out, full=Data(x=torch.randn(5, 7), edge_index=torch.zeros(2, 0, dtype=torch.long)))


def test_split_sizes_as_counts_and_an_empty_validation_split_named(tmp_path, capsys):
    """Review finding: --num-val 1 said "pass a fraction or a count" while the flag only took floats; and
    `gnnkit linkpred --num-val 0` trained an epoch, then failed with "no positive scores" naming no flag."""
    out = tmp_path / "s"
    assert main(["split", "Cora", "--num-val", "100", "--num-test", "200", "--out", str(out)]) == 0
    sizes = json.loads((out / "manifest.json").read_text())["sizes"]
    assert sizes["val_edges"] == 100 and sizes["test_edges"] == 200
    with pytest.raises(SystemExit) as exit_:
        main(["split", "Cora", "--num-test", "1.5", "--out", str(tmp_path / "t")])
    assert exit_.value.code == 2
    assert "--num-test: 1.5 must be a fraction in [0, 1) or a whole count" in capsys.readouterr().err
    assert main(["linkpred", "Cora", "--num-val", "0", "--epochs", "1", "--no-progress"]) == 2
    assert "val split has no positive edges" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["split", "linkpred"])
def test_split_size_errors_name_the_flags(command, tmp_path, capsys):
    """Review finding: the split classes' errors reached the command line as `num_val=0.6 ...`, naming no flag."""
    args = [command, "Cora", "--num-val", "0.6", "--num-test", "0.6", "--no-progress" if command == "linkpred"
            else "--out", *([] if command == "linkpred" else [str(tmp_path / "s")])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--num-val=0.6 and --num-test=0.6 leave no training edges" in err
    assert "fix: smaller --num-val / --num-test" in err and "num_val" not in err


def test_split_flags_ignored_with_a_saved_split_are_named(tmp_path, capsys):
    """Review finding: with --split (or OGB's official split) the split flags were ignored without a word."""
    out = tmp_path / "s"
    assert main(["split", "Cora", "--out", str(out), "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["linkpred", "Cora", "--split", str(out), "--num-val", "0.2", "--mode", "inductive",
                 "--epochs", "1", "--no-progress"]) == 0
    assert f"note: --mode, --num-val ignored: the split is --split {out}" in capsys.readouterr().err


@pytest.mark.parametrize("args,msg", [(["--clip-grad", "nan"], "--clip-grad: nan is not a finite number"),
                                      (["--clip-grad", "-1"], "--clip-grad: -1 must be >= 0"),
                                      (["--select", "hits@10", "--ks", "20"], "--select='hits@10' is not a metric"),
                                      (["--ks", "0"], "--ks must be integers >= 1")])
def test_evaluation_flags_are_checked_before_training(args, msg, capsys):
    """Review finding: --select hits@10 failed after a first epoch of training; --clip-grad nan turned clipping
    off silently."""
    from gnnkit.cli import console_main
    assert console_main(["linkpred", "Cora", *args, "--no-progress"]) == 2
    assert msg in capsys.readouterr().err


def test_split_without_validation_edges_says_linkpred_will_refuse_it(tmp_path, capsys):
    """Review (session 13): `gnnkit split --num-val 0` wrote a split that `gnnkit linkpred` then refused, silently."""
    assert main(["split", "Cora", "--seed", "1", "--num-val", "0", "--out", str(tmp_path / "s")]) == 0
    assert "gnnkit linkpred needs them" in capsys.readouterr().out
    assert main(["split", "Cora", "--seed", "1", "--out", str(tmp_path / "t")]) == 0
    assert "--num-val 0" not in capsys.readouterr().out


def test_an_edited_split_manifest_is_refused_and_verify_flags_it(tmp_path, capsys):
    """Review (session 14): manifest.json had no SHA-256 of its own, so an edited setting ("seed": 0 -> 1) passed
    load_split and `gnnkit verify`; a split from before the side file still loads."""
    from gnnkit.linkpred.io import SplitFileError, load_split
    out = tmp_path / "s"
    assert main(["split", "Cora", "--out", str(out)]) == 0
    assert (out / "manifest.json.sha256").is_file()
    load_split(out)
    assert main(["verify", str(out)]) == 0
    man = out / "manifest.json"
    text = man.read_text()
    man.write_text(text.replace('"seed": 0', '"seed": 1'))
    with pytest.raises(SplitFileError, match="manifest.json: its SHA-256 is not the one"):
        load_split(out)
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    assert "manifest.json: its SHA-256" in capsys.readouterr().err  # verify prints bad findings on stderr
    man.write_text(text)
    (out / "manifest.json.sha256").unlink()  # a split written before the side file existed
    load_split(out)
