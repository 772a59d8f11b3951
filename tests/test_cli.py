"""The command line: help, the main job on a few epochs, argument errors."""
import json
import subprocess
import sys

import pytest

from gnnkit.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_train_both_impls_short(tmp_path, capsys):
    out_json = tmp_path / "res.json"
    assert main(["train", "--epochs", "20", "--runs", "2", "--no-progress", "--out", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "gnnkit" in text and "pyg" in text and "±" in text
    res = json.loads(out_json.read_text())
    g, p = res["summary"]["gnnkit"], res["summary"]["pyg"]
    # same weights, same dropout masks: the two implementations learn the same thing
    assert abs(g["test_acc_mean"] - p["test_acc_mean"]) < 0.02
    assert g["test_acc_mean"] > 0.5  # 20 epochs are enough to be far above chance (1/7)


def test_train_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        main(["train", "--runs", "0"])
    with pytest.raises(SystemExit):
        main(["train", "--model", "nope"])


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "gnnkit", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train" in r.stdout


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    """Review (session 14): `gnnkit train ... | head` ended in a BrokenPipeError traceback."""
    (tmp_path / "a.json").write_text("{}")  # verify prints one "unchecked" line for it on stdout
    p = subprocess.Popen([sys.executable, "-m", "gnnkit", "verify", str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the command writes (its imports take seconds)
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_input_dropout_has_dropout_statistics():
    import torch

    from gnnkit.train import input_dropout
    torch.manual_seed(0)
    x = torch.zeros(200, 300)
    x[torch.rand_like(x) < 0.05] = 2.0
    outs = torch.stack([input_dropout(x, 0.4, True) for _ in range(200)])
    nz = x != 0
    assert torch.all(outs[:, ~nz] == 0)  # zeros stay zero
    kept = (outs[:, nz] != 0).float().mean()
    assert abs(float(kept) - 0.6) < 0.01  # keep probability 1 - p
    assert torch.allclose(outs[:, nz][outs[:, nz] != 0], torch.tensor(2.0 / 0.6))  # inverted scaling
    assert torch.equal(input_dropout(x, 0.4, False), x)


def test_bad_dataset_is_one_clear_line(capsys):
    from gnnkit.cli import console_main
    assert console_main(["train", "--dataset", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "gnnkit train: error:" in err and "unknown dataset" in err and "Traceback" not in err


@pytest.mark.parametrize("args,flag", [
    (["split", "Cora", "--neg-ratio", "inf", "--out", "{tmp}/s"], "--neg-ratio"),
    (["split", "Cora", "--out", ""], "--out"),
    (["split", "Cora", "--out", "{tmp}/afile/x"], "--out"),
    (["split", "Cora", "--seed", "-1", "--out", "{tmp}/s"], "--seed"),
    (["linkpred", "Cora", "--device", "bogus"], "--device"),
    (["linkpred", "Cora", "--device", "cuda:99"], "--device"),
    (["linkpred", "Cora", "--seed", str(2 ** 70)], "--seed"),
    (["linkpred", "Cora", "--hidden", "0"], "--hidden"),
    (["linkpred", "Cora", "--batch-size", "-1"], "--batch-size"),
    (["linkpred", "Cora", "--json", "{tmp}"], "--json"),
    (["linkpred", "Cora", "--dropout", "1.5"], "--dropout"),
    (["train", "--out", "{tmp}"], "--out"),
    (["train", "--out", "{tmp}/afile/r.json"], "--out"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--diagnose", "{tmp}/energy.txt"], "--diagnose"),
    (["profile", "--plot", "{tmp}/plot.json"], "--plot"),
    (["profile", "--out", ""], "--out"),
    (["vq", "sample", "x", "--out", "{tmp}/afile"], "--out"),
    (["vq", "train", "community-small", "--device", "cuda:99"], "--device"),
    (["split", "Cora", "--supervision-ratio", "1.5", "--out", "{tmp}/s"], "--supervision-ratio"),
    (["split", "Cora", "--disjoint-train-ratio", "-0.2", "--out", "{tmp}/s"], "--disjoint-train-ratio"),
    (["linkpred", "Cora", "--supervision-ratio", "0"], "--supervision-ratio"),
])
def test_nonsense_flags_are_one_line_errors_before_any_work(args, flag, tmp_path, capsys):
    """Regression (issue 13.8): nonsense values and unwritable outputs gave tracebacks after the work was
    done, misleading errors, or silently ran (--hidden 0, --batch-size -1, --out '')."""
    (tmp_path / "afile").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    text = capsys.readouterr().err
    err = [ln for ln in text.splitlines() if "error:" in ln]  # argparse prints its usage, then one error line
    assert len(err) == 1 and f"argument {flag}" in err[0] and "Traceback" not in text, text
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("model", ["sage", "gat", "gin", "idgnn-fast"])
def test_train_takes_every_model_side_by_side(model, tmp_path, capsys):
    """`gnnkit train --model gcn|sage|gat|gin` (issue 14.5): both implementations from the same weights and
    dropout masks reach the same accuracy, and the table has time and memory columns."""
    out = tmp_path / "r.json"
    assert main(["train", "--model", model, "--epochs", "8", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "step peak (MiB)" in text and f"{model} on Cora" in text
    s = json.loads(out.read_text())["summary"]
    assert abs(s["gnnkit"]["test_acc_mean"] - s["pyg"]["test_acc_mean"]) < 0.02


def test_idgnn_fast_input_is_the_scaled_closed_walk_counts():
    """`gnnkit train --model idgnn-fast`: the input is x with log1p([A^k]_vv) / max appended (k = 1..4); on a
    triangle with a pendant node the counts are worked by hand."""
    import math

    import torch

    from gnnkit.train import identity_features
    # triangle 0-1-2 and pendant 3 attached to 0, both directions
    und = [(0, 1), (1, 2), (2, 0), (0, 3)]
    ei = torch.tensor([[a for a, b in und] + [b for a, b in und], [b for a, b in und] + [a for a, b in und]])
    x = torch.zeros(4, 2)
    out = identity_features(x, ei)
    assert out.shape == (4, 6) and torch.equal(out[:, :2], x)
    A = torch.zeros(4, 4)
    A[ei[0], ei[1]] = 1
    walks = torch.stack([torch.linalg.matrix_power(A, k).diagonal() for k in range(1, 5)], dim=1)
    # node 0: degree 3, in one triangle -> [A^2]_00 = 3, [A^3]_00 = 2
    assert walks[0, 1] == 3 and walks[0, 2] == 2 and walks[3, 2] == 0
    expect = walks.log1p() / walks.log1p().amax(0).clamp(min=1e-12)
    torch.testing.assert_close(out[:, 2:], expect)
    assert math.isclose(float(out[:, 2:].max()), 1.0)


READ_ONLY_CASES = [
    (["split", "Cora", "--out", "{ro}/split"], "--out"),
    (["split", "Cora", "--out", "{ro}/new/split"], "--out"),
    (["linkpred", "Cora", "--json", "{ro}/r.json"], "--json"),
    (["train", "--out", "{ro}/t.json"], "--out"),
    (["train", "--diagnose", "{ro}/energy.png"], "--diagnose"),
    (["profile", "--out", "{ro}/p.json"], "--out"),
    (["vq", "train", "community-small", "--out", "{ro}/run"], "--out"),
    (["vq", "sample", "x", "--out", "{ro}/samples"], "--out"),
    (["vq", "eval", "x", "--json", "{ro}/e.json"], "--json"),
    (["ogb", "ogbg-molhiv", "--model", "gin", "--out", "{ro}/ogb"], "--out"),
]


def _as_unprivileged():
    """argv prefix running a command as an ordinary user: root may write into a read-only folder (and
    os.access says so), so as root the command runs as 'nobody' through setpriv; None if that is impossible."""
    import os
    import shutil
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return None if setpriv is None else [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize("args,flag", READ_ONLY_CASES)
def test_read_only_outputs_are_one_line_errors_before_any_work(args, flag):
    """Regression (issue 13.8): an output in a read-only folder is refused at once, one line naming the flag
    and the folder, exit 2 — tested as an ordinary user (as root nothing is read-only)."""
    import os
    import tempfile
    prefix = _as_unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be tested")
    base = tempfile.mkdtemp(prefix="gnnkit-ro-")
    try:
        os.chmod(base, 0o755)
        ro = os.path.join(base, "ro")
        os.mkdir(ro)
        os.chmod(ro, 0o555)
        argv = [a.replace("{ro}", ro) for a in args]
        env = {**os.environ, "HOME": base}
        proc = subprocess.run([*prefix, sys.executable, "-m", "gnnkit", *argv], capture_output=True, text=True,
                              timeout=120, env=env, cwd=base)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
        err = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        assert len(err) == 1 and f"argument {flag}" in err[0] and "not writable" in err[0] and ro in err[0] \
            and "Traceback" not in proc.stderr, proc.stderr
        assert os.listdir(ro) == []
    finally:
        import shutil
        os.chmod(os.path.join(base, "ro"), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_plot_is_written_in_the_format_its_suffix_names(tmp_path):
    """Review finding: ``train --diagnose d.txt`` wrote PNG bytes into a .txt file; a plot path now takes its
    format from the suffix (.svg, .pdf, ...; none: PNG) and a suffix matplotlib cannot write is refused."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gnnkit._atomic import write_figure_atomic
    for name, magic in (("a.png", b"\x89PNG"), ("a.svg", b"<?xml"), ("a.pdf", b"%PDF"), ("noext", b"\x89PNG")):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        write_figure_atomic(fig, tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(magic), name
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"cannot write a \.txt image.*\.png"):
        write_figure_atomic(fig, tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()


def test_review_2026_12_05_flags_that_would_be_ignored_are_refused(tmp_path, capsys):
    """Review: `split --supervision-ratio/--partition` in transductive mode and `--disjoint-train-ratio` in inductive
    mode were ignored but saved in the manifest; `linkpred --decoder-layers` with the dot decoder too; `vq train
    --data-seed` for a dataset that is the same for every seed.  Each is now one line naming the flag, exit 2, before
    any data is loaded.  `split --undirected no` on a graph stored both ways warns of the reverse-edge leak."""
    from gnnkit.cli import console_main
    none = str(tmp_path / "none")  # no data there: a refusal must come before any loading
    for argv, flag in ((["split", "Cora", "--supervision-ratio", "0.5"], "--supervision-ratio applies to --mode "
                                                                          "inductive"),
                       (["split", "Cora", "--partition", "region"], "--partition applies to --mode inductive"),
                       (["split", "MUTAG", "--mode", "inductive", "--disjoint-train-ratio", "0.1"],
                        "--disjoint-train-ratio applies to --mode transductive"),
                       (["linkpred", "Cora", "--decoder-layers", "3"], "--decoder-layers applies to --decoder mlp"),
                       (["vq", "train", "ego-small", "--data-seed", "7", "--epochs", "1"],
                        "--data-seed applies only with community-small")):
        out = ["--out", str(tmp_path / "o")] if argv[0] in ("split", "vq") else []
        assert console_main([*argv, "--root", none, *out]) == 2, argv
        err = capsys.readouterr().err
        assert flag in err and "Traceback" not in err, err
    assert console_main(["split", "Cora", "--undirected", "no", "--out", str(tmp_path / "s")]) == 0
    assert "--undirected no on a graph stored both ways" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")  # a folder that is not a split: refused before any loading
    assert console_main(["split", "Cora", "--root", none, "--out", str(busy)]) == 2
    assert "holds no gnnkit split" in capsys.readouterr().err


def test_profile_plot_has_one_panel_per_mode_run_and_a_colour_per_backend(tmp_path):
    """Review: with one mode the legend sat on an empty panel, every swatch blue."""
    from gnnkit import profile as prof
    report = {"graph": {"name": "g", "num_nodes": 3, "num_edges": 2}, "features": 4, "device": "cpu",
              "dtype": "float32", "results": [
                  {"op": "spmm", "backend": b, "mode": "fwd", "median_ms": t, "error": None}
                  for b, t in (("gnnkit-torch", 1.0), ("pyg", 2.0))]}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figs = []
    real = plt.subplots

    def spy(*a, **k):
        figs.append(real(*a, **k))
        return figs[-1]
    plt.subplots = spy
    try:
        prof.plot(report, tmp_path / "p.png")
    finally:
        plt.subplots = real
    fig, axes = figs[0]
    assert axes.shape == (1, 1)  # one panel: only fwd ran
    bars = axes[0, 0].patches
    assert len({tuple(b.get_facecolor()) for b in bars}) == 2  # two backends, two colours
    legend = axes[0, 0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["gnnkit-torch", "pyg"]
    assert [tuple(h.get_facecolor()) for h in legend.legend_handles] == [tuple(b.get_facecolor()) for b in bars]


@pytest.mark.parametrize("argv, prog", [(["vq", "train", "community-small", "--out", "o", "--dataset", "x"],
                                         "gnnkit vq train"),
                                        (["split", "cora", "--out", "o", "--zz"], "gnnkit split"),
                                        (["verify", "a", "--zz"], "gnnkit verify"),
                                        (["--zz", "verify", "a"], "gnnkit")])
def test_an_unknown_flag_is_named_by_its_sub_command(argv, prog, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    flag = next(a for a in argv if a in ("--dataset", "--zz"))
    assert f"{prog}: error: unrecognized arguments: {flag}" in err
    assert f"usage: {prog}" in err  # the sub-command's usage line, where the flags it takes are
