"""Seventh round (2026-12-05): the command-line items the sixth round left, and the clean-ups of its "not mended"
list. Each test fails on the code before this round."""
import re

import pytest


def _exit_code(argv):
    from gnnkit.cli import console_main
    return console_main(argv)


@pytest.mark.parametrize("argv", [
    ["vq", "train", "community-small", "--device", "cpu:1"],
    ["linkpred", "Cora", "--device", "cpu:3"],
    ["profile", "--quick", "--device", "cpu:1"],
])
def test_a_cpu_device_index_is_refused(argv, tmp_path, monkeypatch, capsys):
    """`--device cpu:1` was accepted (torch runs it on the one CPU device)."""
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) == 2
    assert "there is one CPU device" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv,words", [
    (["train", "--num-layers", "100000000", "--no-progress"], r"--hidden 16 with --num-layers 100000000 needs at "
                                                               r"least [\d,]+ GiB"),
    (["linkpred", "Cora", "--layers", "100000000", "--no-progress"], r"--hidden 128 with --layers 100000000"),
    (["ogb", "ogbg-molhiv", "--num-layers", "100000000", "--no-progress"], r"--hidden 300 with --num-layers"),
    (["vq", "train", "community-small", "--prior-layers", "100000000"], r"--prior-d-model 128 with --prior-layers"),
    (["vq", "train", "community-small", "--hidden", "1000000", "--layers", "3"], r"--hidden 1000000 with --layers 3"),
])
def test_a_model_larger_than_the_machine_is_refused_before_it_is_built(argv, words, tmp_path, monkeypatch,
                                                                       capsys):
    """`--num-layers 100000000` built layers for hours; now the lower bound of the weights' size is checked first."""
    from gnnkit.commands import _args
    monkeypatch.setattr(_args, "physical_memory", lambda: 24 * 2 ** 30)
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert re.search(words, err), err
    assert "this machine has 24 GiB" in err
    assert not any(tmp_path.iterdir())


def test_model_size_bound_keeps_every_default_and_a_deep_narrow_model():
    from gnnkit.commands import _args
    _args.check_model_size(16, 2)
    _args.check_model_size(300, 5)
    _args.check_model_size(64, 1000)  # 1,000 layers of 64: 16 MB, allowed
    with pytest.raises(ValueError, match="--hidden 4096 with --num-layers 100000"):
        _args.check_model_size(4096, 100_000)  # 6.25 TB


@pytest.mark.parametrize("exc", ["cpu", "cuda"])
def test_out_of_memory_is_one_line_not_a_traceback(exc, monkeypatch, capsys):
    """`gnnkit train --hidden 1000000000` ended in the CPU allocator's traceback."""
    import torch

    import gnnkit.train

    def oom(cfg, progress=True):
        if exc == "cpu":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 5732000000000 bytes. Error code 12")
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(gnnkit.train, "run", oom)
    assert _exit_code(["train", "--epochs", "1", "--runs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gnnkit train: error: out of memory (") and "fix: smaller sizes" in err
    assert err.count("\n") == 1


def test_other_runtime_errors_still_raise(monkeypatch):
    import gnnkit.train

    def broken(cfg, progress=True):
        raise RuntimeError("a bug")
    monkeypatch.setattr(gnnkit.train, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        _exit_code(["train", "--epochs", "1", "--runs", "1", "--no-progress"])


def test_vq_train_refuses_a_foreign_nonempty_folder(tmp_path, capsys):
    """`vq train --out FOLDER` wrote its checkpoint among another project's files."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _exit_code(["vq", "train", "community-small", "--epochs", "1", "--prior-epochs", "1", "--no-progress",
                       "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnnkit vq train: error: --out") and "holds no gnnkit run" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_vqrun_create_refuses_a_folder_holding_a_run_or_other_files(tmp_path):
    """The library's `VQRun.create(cfg, folder)` replaced another run's checkpoint at its first save."""
    from gnnkit.latent.train import VQRun, config_for
    cfg = config_for("community-small", epochs=1, prior_epochs=1)
    held = tmp_path / "run"
    held.mkdir()
    (held / "checkpoint.pt").write_bytes(b"an earlier run")
    with pytest.raises(ValueError, match=r"already holds a run .*VQRun.resume"):
        VQRun.create(cfg, held)
    assert (held / "checkpoint.pt").read_bytes() == b"an earlier run"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.csv").write_text("1")
    with pytest.raises(ValueError, match="not empty and holds no gnnkit run"):
        VQRun.create(cfg, other)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        VQRun.create(cfg, tmp_path / "f")
    assert VQRun.create(cfg, tmp_path / "new").run_dir == tmp_path / "new"  # absent: fine
    (tmp_path / "empty").mkdir()
    VQRun.create(cfg, tmp_path / "empty")  # empty: fine


@pytest.mark.parametrize("argv,prefix", [
    (["vq", "train"], "gnnkit vq train: error: give a DATASET"),
    (["vq", "sample", "nowhere", "-n", "0", "--out", "o"], "gnnkit vq sample: error: -n must be >= 1"),
])
def test_vq_errors_name_the_action(argv, prefix, tmp_path, monkeypatch, capsys):
    """`gnnkit vq train` errors said `gnnkit vq: error:` where argparse's own say `gnnkit vq train: error:`."""
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) == 2
    assert capsys.readouterr().err.startswith(prefix)


def test_profile_exits_nonzero_when_nothing_was_measured(tmp_path, monkeypatch, capsys):
    """`gnnkit profile` with every measurement failing wrote its report of errors and exited 0."""
    import gnnkit.profile.report as report
    from gnnkit.profile.backends import Record

    def failing(p, op, backend, mode, *a, **k):
        return Record(op, backend, mode, error="RuntimeError: simulated failure")
    monkeypatch.setattr(report, "run_one", failing)
    out = tmp_path / "p.json"
    assert _exit_code(["profile", "--quick", "--no-progress", "--no-plot", "--ops", "spmm", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nothing was measured (first: spmm" in err and "simulated failure" in err
    assert out.is_file()  # the report of the errors is still written


def test_profile_exits_zero_when_something_was_measured(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert _exit_code(["profile", "--quick", "--no-progress", "--no-plot", "--ops", "spmm", "--backends",
                       "gnnkit-torch", "--modes", "fwd", "--out", str(out)]) == 0


# ---------------------------------------------------------------- clean-ups of the sixth round's "not mended" list
def _tiny_graph():
    import torch

    import gnnkit.ops as ops
    g, _ = ops.as_graph(torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]]), num_nodes=3)
    return g


@pytest.mark.parametrize("call", ["spmm-grad", "spmm-vmap", "spmm-jvp", "softmax-grad", "sddmm-vmap"])
def test_ops_name_torch_func_transforms(call):
    """Calling gnnkit.ops under torch.func gave torch's words about `setup_context` (the layers named themselves,
    the ops did not)."""
    import torch

    import gnnkit.ops as ops
    g, x, s = _tiny_graph(), torch.randn(3, 4), torch.randn(4)
    batched = x.unsqueeze(0).expand(2, 3, 4)
    fn = {"spmm-grad": lambda: torch.func.grad(lambda x: ops.spmm(g, x).sum())(x),
          "spmm-vmap": lambda: torch.func.vmap(lambda x: ops.spmm(g, x))(batched),
          "spmm-jvp": lambda: torch.func.jvp(lambda x: ops.spmm(g, x), (x,), (x,)),
          "softmax-grad": lambda: torch.func.grad(lambda s: ops.segment_softmax(g, s).sum())(s),
          "sddmm-vmap": lambda: torch.func.vmap(lambda x: ops.sddmm(g, x, x))(batched)}[call]
    with pytest.raises(RuntimeError, match=r"Function: torch.func transforms .* not supported by gnnkit's sparse ops"):
        fn()


def test_gnnkit_dropout_under_torch_func_is_torchs_dropout():
    """gnnkit's CPU dropout (an autograd Function) under vmap/grad gave torch's `setup_context` error; it falls back
    to F.dropout there, which torch.func supports."""
    import torch

    from gnnkit.nn.dropout import dropout
    x = torch.randn(2, 50, 8)
    y = torch.func.vmap(lambda v: dropout(v, 0.5), randomness="different")(x)
    kept = y != 0
    assert torch.allclose(y[kept], 2 * x[kept]) and 0.3 < kept.float().mean() < 0.7
    g = torch.func.grad(lambda v: dropout(v, 0.25).sum())(x[0])
    assert torch.isclose(g, torch.tensor(0.0)).logical_or(torch.isclose(g, torch.tensor(4 / 3))).all()


class _ScriptedTrainer:
    """An OGB trainer whose validation / test scores are given per epoch (the runner's selection rule alone)."""

    def __init__(self, scores):
        self.scores, self.epoch = scores, 0

    def initial_state(self):
        return {}

    def train_epoch(self, progress=False):
        self.epoch += 1
        return 1.0 / self.epoch

    def evaluate(self):
        valid, test = self.scores[self.epoch - 1]
        return {"valid": valid, "test": test}

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]

    def generators(self):
        return []


@pytest.mark.parametrize("scores,best_epoch,test", [
    ([(0.5, 0.1), (0.7, 0.2), (0.7, 0.9), (0.6, 0.95)], 2, 0.2),   # a tie: the earlier epoch wins (OGB's Logger)
    ([(0.7, 0.3), (0.7, 0.4), (0.7, 0.5)], 1, 0.3),
    ([(0.5, 0.1), (0.6, 0.2), (0.8, 0.3)], 3, 0.3),                # a strictly better later epoch wins
])
def test_ogb_reports_the_test_score_of_the_first_best_validation_epoch(scores, best_epoch, test, tmp_path,
                                                                      monkeypatch):
    """OGB's Logger takes ``argmax`` of the validation column (its first maximum); the runner's `>` keeps the earlier
    epoch on a tie. Untested before (mutation testing: `>=` survived)."""
    import gnnkit.ogb.runner as runner
    from gnnkit.ogb import OGBConfig

    class Task:
        metric = "rocauc"

        def trainer(self, lib, seed, init=None, ctx=None):
            return _ScriptedTrainer(scores)
    monkeypatch.setattr(runner, "make_task", lambda cfg: Task())
    cfg = OGBConfig(dataset="ogbg-molhiv", model="gin", runs=1, epochs=len(scores), layers=("gnnkit",), device="cpu")
    res = runner.run(cfg, str(tmp_path / "run"), progress=False)
    import json
    record = json.loads((tmp_path / "run" / "log.json").read_text())["runs"]["gnnkit"][0]
    assert record["best_epoch"] == best_epoch
    assert res["summary"]["gnnkit"]["test"]["mean"] == test
