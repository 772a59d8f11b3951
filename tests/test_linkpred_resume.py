"""`fit(checkpoint=..., resume=True)` and `gnnkit linkpred --checkpoint F --resume`: a run stopped after any
epoch and resumed ends with exactly the losses, metrics and reported epoch of an uninterrupted run."""
import json

import pytest
import torch
from torch_geometric.data import Data

from gnnkit.cli import console_main, main
from gnnkit.linkpred import TransductiveLinkSplit
from gnnkit.linkpred.train import LinkPredConfig, fit


class Stop(Exception):
    pass


def _split(features: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    data = Data(edge_index=torch.randint(0, 120, (2, 900), generator=g), num_nodes=120)
    if features:
        data.x = torch.randn(120, 8, generator=g)
    return TransductiveLinkSplit(0.1, 0.1, is_undirected=True, seed=0)(data)


# every random stream: dropout (global RNG), negatives, batch order, message/supervision reshuffle, Adam state
CFG = dict(model="sage", decoder="mlp", decoder_layers=2, clip_grad=1.0, hidden=16, out_channels=16, dropout=0.5,
           lr=0.01, epochs=6, batch_size=64, eval_every=2, select="auc", ks=(10,))


def _stop_after(epoch):
    def hook(res):
        if len(res.history) >= epoch:
            raise Stop
    return hook


@pytest.mark.parametrize("stop_at", [2, 4])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, stop_at):
    tr, va, te = _split()
    cfg = LinkPredConfig(**CFG)
    whole = fit(tr, va, te, cfg, progress=False)
    ck = tmp_path / "run.pt"
    with pytest.raises(Stop):  # stopped after an evaluated epoch (the hook runs after the checkpoint)
        fit(tr, va, te, cfg, progress=False, checkpoint=ck, checkpoint_every_s=0, on_epoch=_stop_after(stop_at))
    assert ck.exists() and (tmp_path / "run.pt.sha256").exists()
    assert torch.load(ck, weights_only=False)["history"][-1]["epoch"] == stop_at
    resumed = fit(tr, va, te, cfg, progress=False, checkpoint=ck, resume=True, checkpoint_every_s=0)
    assert resumed.history == whole.history
    assert (resumed.best_epoch, resumed.val, resumed.test) == (whole.best_epoch, whole.val, whole.test)
    again = fit(tr, va, te, cfg, progress=False, checkpoint=ck, resume=True)  # finished: the result, no training
    assert again.history == whole.history and again.test == whole.test


def test_resume_after_an_epoch_that_was_not_evaluated(tmp_path):
    """Stopped after epoch 3 (eval_every=2): the checkpoint of epoch 3 carries the best of epoch 2."""
    tr, va, te = _split(features=True)
    cfg = LinkPredConfig(**{**CFG, "model": "gcn", "batch_size": 0})
    whole = fit(tr, va, te, cfg, progress=False)
    ck = tmp_path / "run.pt"
    stopped = []

    def hook(res):  # called after evaluated epochs only: stop while epoch 3 is being trained
        stopped.append(len(res.history))
    import gnnkit.linkpred.train as lt
    real = lt.LinkPredTrainer.train_epoch

    def train_epoch(self):
        if self.epoch == 3:
            raise Stop
        return real(self)
    lt.LinkPredTrainer.train_epoch = train_epoch
    try:
        with pytest.raises(Stop):
            fit(tr, va, te, cfg, progress=False, checkpoint=ck, checkpoint_every_s=0, on_epoch=hook)
    finally:
        lt.LinkPredTrainer.train_epoch = real
    assert stopped == [2] and torch.load(ck, weights_only=False)["history"][-1]["epoch"] == 3
    resumed = fit(tr, va, te, cfg, progress=False, checkpoint=ck, resume=True)
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch


def test_checkpoint_refusals(tmp_path):
    tr, va, te = _split()
    cfg = LinkPredConfig(**{**CFG, "epochs": 2})
    ck = tmp_path / "run.pt"
    fit(tr, va, te, cfg, progress=False, checkpoint=ck)
    before = ck.read_bytes()
    with pytest.raises(ValueError, match="already exists.*fix: --resume \\(resume=True"):
        fit(tr, va, te, cfg, progress=False, checkpoint=ck)
    with pytest.raises(ValueError, match=r"other settings.*'lr': \(0.01, 0.02\)"):
        fit(tr, va, te, LinkPredConfig(**{**CFG, "epochs": 2, "lr": 0.02}), progress=False, checkpoint=ck, resume=True)
    other = _split(seed=1)
    with pytest.raises(ValueError, match="another split"):
        fit(*other, cfg, progress=False, checkpoint=ck, resume=True)
    with pytest.raises(ValueError, match="needs the checkpoint file"):
        fit(tr, va, te, cfg, progress=False, resume=True)
    with pytest.raises(ValueError, match="checkpoint_every_s must be >= 0"):
        fit(tr, va, te, cfg, progress=False, checkpoint=tmp_path / "x.pt", checkpoint_every_s=-1)
    assert ck.read_bytes() == before  # never overwritten by a refused run
    ck.write_bytes(before[:-10])  # damaged: named, with the fix
    with pytest.raises(ValueError, match="run.pt.*SHA-256.*delete it to start the run again"):
        fit(tr, va, te, cfg, progress=False, checkpoint=ck, resume=True)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": 1}, foreign)
    with pytest.raises(ValueError, match="not a gnnkit linkpred checkpoint"):
        fit(tr, va, te, cfg, progress=False, checkpoint=foreign, resume=True)


def test_resume_without_a_checkpoint_on_disk_starts_afresh(tmp_path):
    tr, va, te = _split()
    cfg = LinkPredConfig(**{**CFG, "epochs": 2})
    a = fit(tr, va, te, cfg, progress=False, checkpoint=tmp_path / "new.pt", resume=True)
    assert a.history == fit(tr, va, te, cfg, progress=False).history


def test_cli_checkpoint_and_resume(tmp_path, capsys, monkeypatch):
    ck, js = tmp_path / "ck.pt", tmp_path / "r.json"
    base = ["linkpred", "Cora", "--epochs", "4", "--hidden", "16", "--out-channels", "8", "--no-progress",
            "--checkpoint-every", "0"]
    assert main(base + ["--json", str(js)]) == 0
    whole = json.loads(js.read_text())

    import gnnkit.linkpred.train as lt
    real = lt.LinkPredTrainer.train_epoch

    def interrupted(self):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return real(self)
    monkeypatch.setattr(lt.LinkPredTrainer, "train_epoch", interrupted)
    assert console_main(base + ["--checkpoint", str(ck)]) == 130
    assert "continue with the same command and --resume" in capsys.readouterr().err
    monkeypatch.setattr(lt.LinkPredTrainer, "train_epoch", real)
    assert main(base + ["--checkpoint", str(ck)]) == 2  # no --resume: refused, not overwritten
    assert "fix: --resume (resume=True from Python)" in capsys.readouterr().err
    js2 = tmp_path / "r2.json"
    assert main(base + ["--checkpoint", str(ck), "--resume", "--json", str(js2)]) == 0
    resumed = json.loads(js2.read_text())
    assert resumed["history"] == whole["history"] and resumed["test"] == whole["test"]
    assert resumed["best_epoch"] == whole["best_epoch"]
    assert main(base + ["--resume"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err
    assert main(base + ["--checkpoint", str(js2), "--json", str(js2)]) == 2
    assert "name the same file" in capsys.readouterr().err


def test_bad_checkpoint_arguments_are_named(tmp_path):
    tr, va, te = _split()
    cfg = LinkPredConfig(**{**CFG, "epochs": 1})
    with pytest.raises(ValueError, match="is a folder; fix: a file path"):
        fit(tr, va, te, cfg, progress=False, checkpoint=tmp_path)
    for bad in ("10", float("nan"), -1):
        with pytest.raises(ValueError, match="checkpoint_every_s must be >= 0 seconds"):
            fit(tr, va, te, cfg, progress=False, checkpoint=tmp_path / "x.pt", checkpoint_every_s=bad)
