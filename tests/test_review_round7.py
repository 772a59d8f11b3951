"""Seventh round (2026-12-05): the command-line items the sixth round left, and the clean-ups of its "not mended"
list. Each test fails on the code before this round."""
import re
from pathlib import Path

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


# ---------------------------------------------------------------- seventh-round reviews: dtypes, serialization, signals
def test_gine_passes_gradients_through_a_nan_message_as_pyg():
    """gnnkit's GINE message saved `result > 0` for its backward, which drops the gradient of a NaN message where
    torch's ReLU (PyG's) passes it: finite gradients 18-54 % off PyG's with one NaN feature."""
    import torch
    from torch_geometric.nn import GINEConv as PygGINE

    import gnnkit.nn as gnn
    x = torch.tensor([[1., 2.], [float("nan"), 3.], [-1., 0.5]])
    ei = torch.tensor([[1, 0, 1], [0, 2, 2]])
    ea = torch.tensor([[0.5, -4.], [1., 1.], [2., 1.]])
    grads = []
    for cls in (PygGINE, gnn.GINEConv):
        conv = cls(torch.nn.Identity())
        xx, e = x.clone().requires_grad_(), ea.clone().requires_grad_()
        out = conv(xx, ei, e)  # (the sum is NaN; its gradient is 1 everywhere)
        grads.append(torch.autograd.grad(out.sum(), [xx, e]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, equal_nan=True)
    assert grads[1][0].tolist() == [[2.0, 2.0], [3.0, 2.0], [1.0, 1.0]]  # PyG's (gnnkit's before: [1, 2] for x[1])


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_lstm_aggregation_names_an_input_dtype_its_weights_do_not_have(dtype):
    """SAGEConv(aggr='lstm') with float64 x on a float32 layer: 'mat1 and mat2 must have the same dtype'; bf16: an
    MKL-DNN primitive-descriptor error. PyG names the dtypes (torch's LSTM)."""
    import torch

    import gnnkit.nn as gnn
    conv = gnn.SAGEConv(4, 3, aggr="lstm")
    x = torch.randn(5, 4, dtype=getattr(torch, dtype))
    with pytest.raises(ValueError, match=rf"x is torch.{dtype} but the LSTM's weights are torch.float32.*fix"):
        conv(x, torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))


def test_pgnn_pickles_without_its_distance_tables():
    """`torch.save(model)` of a PGNN stored its [N, N] distance tables (up to 1 GiB by default): 655 kB against 15 kB
    at N = 400."""
    import io

    import torch

    import gnnkit.nn as gnn
    torch.manual_seed(0)
    n = 200
    ei = torch.randint(0, n, (2, 800))
    model = gnn.PGNN(8, 16, num_layers=1).eval()
    x = torch.randn(n, 8)
    out = model(x, ei)
    assert len(model._scores) == 1
    buf = io.BytesIO()
    torch.save(model, buf)
    assert buf.tell() < 4 * n * n  # (a float32 table alone is 4 N^2 bytes)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    assert len(again._scores) == 0 and len(model._scores) == 1
    torch.testing.assert_close(again(x, ei), out)


def test_a_run_folder_left_by_an_interrupted_first_save_is_taken_again(tmp_path):
    """A Ctrl-C during `vq train`'s first checkpoint write leaves checkpoint.pt.sha256 (renamed into place first)
    and maybe a temporary file: --resume had no checkpoint and --out refused the folder as foreign — no way on."""
    from gnnkit.latent.train import VQRun, config_for, foreign_files, load_checkpoint
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt.sha256").write_text("0" * 64 + "  checkpoint.pt\n")
    (run / ".checkpoint.pt.tmp-99999999-abcd1234.tmp").write_bytes(b"half")
    with pytest.raises(FileNotFoundError, match="first save was interrupted.*start the run again"):
        load_checkpoint(run)
    assert foreign_files(run) == []
    (run / "mine.txt").write_text("x")
    assert [p.name for p in foreign_files(run)] == ["mine.txt"]
    (run / "mine.txt").unlink()
    cfg = config_for("community-small", epochs=1, prior_epochs=1)
    VQRun.create(cfg, run).save()
    assert load_checkpoint(run)["stage"] == "autoencoder"


def test_verify_names_a_killed_writes_temporary_copy_instead_of_calling_it_a_split(tmp_path, capsys):
    """SIGKILL/SIGTERM during `gnnkit split` over an existing split left `.sp.tmp-PID-XXXXXXXX` (a whole split
    copy), which `gnnkit verify` reported as an intact split."""
    import shutil

    from gnnkit.cli import main
    from gnnkit.integrity import UNCHECKED, verify
    assert main(["split", "Cora", "--out", str(tmp_path / "sp")]) == 0
    stray = tmp_path / ".sp.tmp-99999999-abcd1234"
    shutil.copytree(tmp_path / "sp", stray)
    found = verify(tmp_path)
    strays = [f for f in found if f.path == stray]
    assert len(strays) == 1 and strays[0].status == UNCHECKED and "temporary folder" in strays[0].detail \
        and "killed" in strays[0].detail
    assert not any(stray in Path(f.path).parents for f in found)
    assert [f.status for f in verify(stray)] == [UNCHECKED]
    (tmp_path / "sp" / ".manifest.json.tmp-99999999-abcd1234.tmp").write_bytes(b"{")
    assert any("temporary file" in f.detail for f in verify(tmp_path / "sp"))


def test_sigterm_during_a_split_write_cleans_up_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """No module set a SIGTERM handler: `kill`, `timeout` or a scheduler ending `gnnkit split` over an existing
    split left its temporary copy of the split beside it. The executable now raises SIGTERM as an interrupt (exit
    143), so the write removes it; the old split stays, intact."""
    import os
    import signal

    import gnnkit.linkpred.io as lio
    from gnnkit.cli import console_main
    from gnnkit.integrity import OK, verify
    monkeypatch.setattr(signal, "SIGTERM", signal.SIGTERM)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert console_main(["split", "Cora", "--out", str(tmp_path / "sp")]) == 0
        before = (tmp_path / "sp" / "manifest.json").read_bytes()
        real = lio._fsync_dir

        def killed(folder):
            os.kill(os.getpid(), signal.SIGTERM)
            real(folder)
        monkeypatch.setattr(lio, "_fsync_dir", killed)
        assert console_main(["split", "Cora", "--seed", "1", "--out", str(tmp_path / "sp")]) == 143
        assert "gnnkit split: terminated" in capsys.readouterr().err
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handed back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sp"]
    assert (tmp_path / "sp" / "manifest.json").read_bytes() == before
    assert all(f.status == OK for f in verify(tmp_path / "sp"))


def test_a_deepcopy_of_a_compiled_pgnn_runs_its_own_weights_and_saves():
    """The first `PGNN.__getstate__` (this round) kept torch's compiled call in the state: a deepcopy of a compiled
    model ran the original's weights, and `torch.save` of it failed with a PicklingError."""
    import copy
    import io

    import torch

    import gnnkit.nn as gnn
    torch.manual_seed(0)
    model = gnn.PGNN(4, 8, num_layers=1).eval()
    model.compile(backend="eager")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
    x, ei = torch.randn(30, 4), torch.randint(0, 30, (2, 90))
    assert not torch.allclose(model(x, ei), twin(x, ei))
    torch.save(model, io.BytesIO())


def test_a_sigterm_while_an_error_is_reported_exits_143(monkeypatch, capsys):
    """Under torchrun the agent's SIGTERM reaches the survivors while they report the dead rank: a `Terminated` raised
    inside `console_main`'s error handlers escaped as a traceback."""
    import gnnkit.train
    from gnnkit import cli

    def failing(cfg, progress=True):
        raise ValueError("a bad value")
    monkeypatch.setattr(gnnkit.train, "run", failing)
    real_print = print

    def terminated_print(*args, **kwargs):  # the signal arrives while the error line is printed
        if "a bad value" in " ".join(map(str, args)):
            raise cli.Terminated()
        real_print(*args, **kwargs)
    monkeypatch.setattr("builtins.print", terminated_print)
    assert cli.console_main(["train", "--epochs", "1", "--runs", "1", "--no-progress"]) == 143
    assert "gnnkit train: terminated" in capsys.readouterr().err
