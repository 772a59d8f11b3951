"""Session 32's mends (docs/reliability.md, "Independent review, 2026-12-05, eighth round")."""
import pytest

from gnnkit.cli import console_main


def test_run_folder_check_is_one_function_worded_for_its_caller(tmp_path, capsys):
    """`vq train --out` repeated VQRun.create's folder checks in its own words; one check now serves both, and a
    non-path argument gets a TypeError naming it (was `foreign_files(5)`: an unnamed TypeError from pathlib)."""
    from gnnkit.latent.train import VQRun, check_new_run_dir, config_for, foreign_files
    held = tmp_path / "run"
    held.mkdir()
    (held / "checkpoint.pt").write_bytes(b"an earlier run")
    with pytest.raises(ValueError, match=r"^--out .* already holds a run \(checkpoint.pt\); continue it with "
                                         r"--resume .*run or choose another folder"):
        check_new_run_dir(held, name="--out", resume="--resume {dir}")
    with pytest.raises(ValueError, match=r"^VQRun.create: run_dir .* VQRun.resume\('.*run'\)"):
        VQRun.create(config_for("community-small", epochs=1, prior_epochs=1), held)
    with pytest.raises(TypeError, match="foreign_files: run_dir must be a folder path"):
        foreign_files(5)
    with pytest.raises(TypeError, match="run_dir must be a folder path"):
        check_new_run_dir(5)
    assert console_main(["vq", "train", "community-small", "--epochs", "1", "--prior-epochs", "1", "--no-progress",
                         "--out", str(held)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnnkit vq train: error: --out") and f"--resume {held}" in err
    assert (held / "checkpoint.pt").read_bytes() == b"an earlier run"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_an_interrupt_after_the_split_swap_says_the_split_is_whole(tmp_path, monkeypatch, capsys, exchange):
    """A Ctrl-C just after `gnnkit split` put the new split in place (while the old copy was being removed)
    printed "interrupted", as if nothing had been written; the new split was complete. The line says so now,
    the old copy is still removed, and the folder verifies as the new split."""
    import json

    import gnnkit.linkpred.io as lio
    from gnnkit.integrity import OK, verify
    out = tmp_path / "sp"
    assert console_main(["split", "Cora", "--out", str(out)]) == 0
    capsys.readouterr()
    if not exchange:
        monkeypatch.setattr(lio, "_exchange", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    real, calls = lio._fsync_dir, []

    def interrupted_after_swap(folder):
        calls.append(folder)
        real(folder)
        if len(calls) == 2:  # 1: the new copy's entries, before the swap; 2: the parent folder, after it
            raise KeyboardInterrupt
    monkeypatch.setattr(lio, "_fsync_dir", interrupted_after_swap)
    assert console_main(["split", "Cora", "--seed", "1", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"gnnkit split: interrupted ({out} was written whole before it)" in err
    assert "--resume" not in err
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert all(f.status == OK for f in verify(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sp"]  # no temporary or old copy left


def test_an_interrupt_during_the_split_summary_says_the_split_is_whole(tmp_path, monkeypatch, capsys):
    import gnnkit.commands.split as cmd

    def summary(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(cmd, "_summary", summary)
    assert console_main(["split", "Cora", "--out", str(tmp_path / "sp")]) == 130
    assert f"interrupted ({tmp_path / 'sp'} was written whole before it)" in capsys.readouterr().err


def test_graph_transpose_rows_is_the_transposed_csr_row():
    import torch

    from gnnkit.ops import Graph
    torch.manual_seed(0)
    for n_src, n_dst, e in ((30, 30, 200), (7, 40, 90), (50, 3, 120), (5, 5, 0)):
        ei = torch.stack([torch.randint(0, n_src, (e,)), torch.randint(0, n_dst, (e,))])
        g = Graph.build(ei, size=(n_src, n_dst))
        rowptr_t = g.transpose()[0]
        want = torch.repeat_interleave(torch.arange(g.num_src), rowptr_t.diff(), output_size=e)
        assert torch.equal(g.transpose_rows(), want)
        assert g.transpose_rows() is g.transpose_rows()  # built once


def test_ops_read_the_graphs_slot_rows_instead_of_rebuilding_them(monkeypatch):
    """An issue-11 audit (session 32): a multi-head SpMM of more than 64 values per slot rebuilt each slot's row
    from rowptr with repeat_interleave on every call, forward (Graph.row was at hand) and backward (the transposed
    CSR's rows), and SAGE's softmax aggregation rebuilt both per chunk. The ops read the Graph's now: a training
    step on a Graph whose state is built makes no repeat_interleave call, and matches PyG."""
    import torch
    import torch_geometric.nn as pnn

    import gnnkit.nn as gnn
    from gnnkit.ops import Graph
    torch.manual_seed(0)
    n, f = 30, 96
    ei = torch.randint(0, n, (2, 200))
    pairs = ((gnn.GATConv(f, f // 4, heads=4), pnn.GATConv(f, f // 4, heads=4)),
             (gnn.GATv2Conv(f, f // 4, heads=4), pnn.GATv2Conv(f, f // 4, heads=4)),
             (gnn.SAGEConv(f, f, aggr="softmax", aggr_kwargs={"learn": True}),
              pnn.SAGEConv(f, f, aggr="softmax", aggr_kwargs={"learn": True})))
    real, calls = torch.repeat_interleave, []

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)
    for ours, theirs in pairs:
        ours.load_state_dict(theirs.state_dict())
        g = Graph.build(ei, num_nodes=n)
        x = torch.randn(n, f, requires_grad=True)
        ours(x, g).sum().backward()  # builds the graph's state (self-loops, transpose, rows)
        x.grad = None
        monkeypatch.setattr(torch, "repeat_interleave", counted)
        out = ours(x, g)
        out.square().sum().backward()
        monkeypatch.setattr(torch, "repeat_interleave", real)
        assert calls == [], type(ours).__name__
        gx = x.grad
        x.grad = None
        ref = theirs(x, ei)
        ref.square().sum().backward()
        assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(gx, x.grad, atol=1e-4)


def test_transpose_rows_is_kept_only_where_a_backward_reads_it():
    """The re-read of this round: SpMM kept Graph.transpose_rows (8 bytes per edge) for every multi-head product
    with a gradient, though only the torch path's weighted sums wider than 64 values per slot read it."""
    import torch

    from gnnkit.ops import Graph, spmm_slots
    torch.manual_seed(0)
    n, e = 100, 2000
    ei = torch.randint(0, n, (2, e))
    for reduce, heads, width, kept in (("sum", 4, 24, True), ("mean", 4, 24, True), ("sum", 4, 8, False),
                                       ("max", 4, 24, False), ("sum", 1, 96, False)):
        g = Graph.build(ei.clone(), num_nodes=n)
        x = torch.randn(n, heads, width, requires_grad=True)
        v = torch.rand(e, heads, requires_grad=True)
        spmm_slots(g, x, v, reduce).sum().backward()
        assert (g.derived_or_none("transpose_rows") is not None) == kept, (reduce, heads, width)


def test_only_the_running_command_builds_its_arguments():
    """The issue-11 audit: cli.py said command modules were imported only when their command ran; every command's
    arguments were built on every call, and `gnnkit vq`'s import gnnkit.latent and PyG (~3 s): `gnnkit --help` and
    `gnnkit verify` paid for them. Now only the named command's arguments are built; the help text is the same."""
    import subprocess
    import sys
    code = ("import sys; from gnnkit.cli import build_parser; build_parser({argv}); "
            "print('gnnkit.latent' in sys.modules, 'torch_geometric' in sys.modules)")
    for argv, want in ((["--help"], "False False"), (["verify", "x"], "False False"), (["vq", "train"], "True True")):
        out = subprocess.run([sys.executable, "-c", code.format(argv=argv)], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == want, (argv, out)
    from gnnkit.cli import build_parser

    def sub(parser, *names):
        for name in names:
            parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
        return parser
    full = build_parser()
    for argv in (["vq", "train"], ["train"], ["split", "Cora"], ["verify", "x"]):
        names = argv[:2] if argv[0] == "vq" else argv[:1]
        text = sub(build_parser(argv), *names).format_help()
        assert text == sub(full, *names).format_help() and "--" in text  # the command's own flags, as before
    assert build_parser([]).format_help() == full.format_help()


def test_skewed_in_degree_graph_names_bad_arguments():
    import pytest as _pytest

    from gnnkit.profile import skewed_in_degree_graph
    ei = skewed_in_degree_graph(50, 400, seed=3)
    assert ei.shape == (2, 400) and int(ei.max()) < 50 and torch_equal(ei, skewed_in_degree_graph(50, 400, seed=3))
    capped = skewed_in_degree_graph(50, 400, cap=2)
    assert int(capped[1].bincount().max()) <= 2 and bool((capped[1].diff() >= 0).all())  # sorted by destination
    for kw, name in ((dict(num_nodes=0), "num_nodes"), (dict(num_nodes=10.5), "num_nodes"), (dict(num_edges=-1),
                     "num_edges"), (dict(cap=-1), "cap"), (dict(exponent=float("nan")), "exponent")):
        args = {"num_nodes": 10, "num_edges": 5, **kw}
        with _pytest.raises(ValueError, match=f"skewed_in_degree_graph: {name} must be"):
            skewed_in_degree_graph(**args)


def torch_equal(a, b):
    import torch
    return torch.equal(a, b)
