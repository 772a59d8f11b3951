"""Session 33's mends (docs/reliability.md, "Independent review, 2026-12-06, ninth round")."""
import gc

import pytest
import torch

import gnnkit.ops.graph as graph_mod
from gnnkit.ops import cached_for, clear_cache, set_cache_limit


@pytest.fixture
def fresh_cache():
    clear_cache()
    old = set_cache_limit()
    yield
    set_cache_limit(*old)
    clear_cache()


def _consistent() -> None:
    """The cache's bookkeeping agrees with its entries."""
    assert graph_mod._CACHE_HELD == sum(v[3] for v in graph_mod._CACHE.values())
    assert sorted(graph_mod._CACHE) == sorted(k for ks in graph_mod._CACHE_IDS.values() for k in ks)


def test_cycling_over_more_than_16_kept_graphs_builds_each_once(fresh_cache):
    """The cache dropped its oldest entry past 16, so a loop over 17+ kept edge_index tensors rebuilt (sorted)
    every graph on every visit; entries now stay while their inputs fit the byte bound."""
    builds = []
    eis = [torch.randint(0, 50, (2, 100)) for _ in range(40)]
    for _ in range(3):
        for i, ei in enumerate(eis):
            cached_for(ei, ("t",), lambda i=i: builds.append(i) or i)
    assert len(builds) == 40 and len(graph_mod._CACHE) == 40
    _consistent()
    del eis, ei
    gc.collect()
    assert len(graph_mod._CACHE) == 0 and not graph_mod._CACHE_IDS and graph_mod._CACHE_HELD == 0


def test_cache_bounds_drop_least_recently_used_only_past_both(fresh_cache):
    eis = [torch.randint(0, 50, (2, 100)) for _ in range(10)]  # 1,600 bytes each
    set_cache_limit(entries=4, index_bytes=0)
    for i, ei in enumerate(eis):
        cached_for(ei, ("t",), lambda i=i: i)
    assert len(graph_mod._CACHE) == 4  # past 4 entries and past 0 bytes: the oldest went
    assert [id(v[0]()) for v in graph_mod._CACHE.values()] == [id(e) for e in eis[6:]]  # the 4 most recent
    _consistent()
    clear_cache()
    set_cache_limit(entries=4, index_bytes=3 * 1600)
    for i, ei in enumerate(eis):
        cached_for(ei, ("t",), lambda i=i: i)
    assert len(graph_mod._CACHE) == 4  # 4 entries hold 6,400 bytes > 4,800: still bounded by the count
    set_cache_limit(index_bytes=8 * 1600)
    for i, ei in enumerate(eis):
        cached_for(ei, ("t",), lambda i=i: i)
    assert len(graph_mod._CACHE) == 8  # past 4 entries, the byte bound holds 8
    _consistent()
    assert set_cache_limit(entries=2) == (4, 8 * 1600)
    assert len(graph_mod._CACHE) == 8  # lowering the count alone drops nothing while the bytes fit
    set_cache_limit(index_bytes=0)
    assert len(graph_mod._CACHE) == 2
    _consistent()


def test_refilled_tensor_keeps_one_entry_among_many(fresh_cache):
    """The scan for a tensor's stale entries reads that tensor's keys only, and still finds them."""
    others = [torch.randint(0, 50, (2, 100)) for _ in range(30)]
    for o in others:
        cached_for(o, ("t",), lambda: 0)
    buf = torch.randint(0, 50, (2, 100))
    for step in range(5):
        buf.random_(0, 50)  # refilled in place: a new version each step
        assert cached_for(buf, ("t",), lambda step=step: step) == step
    assert sum(1 for v in graph_mod._CACHE.values() if v[0]() is buf) == 1
    _consistent()


@pytest.mark.parametrize("kwargs, name", [({"entries": -1}, "entries"), ({"index_bytes": 1.5}, "index_bytes"),
                                          ({"entries": True}, "entries")])
def test_set_cache_limit_refuses_bad_bounds_by_name(fresh_cache, kwargs, name):
    with pytest.raises(ValueError, match=rf"set_cache_limit: {name} must be an int >= 0"):
        set_cache_limit(**kwargs)


def test_a_layer_cycling_over_17_graphs_sorts_once_per_graph(fresh_cache, monkeypatch):
    """The reviewer's case: SAGEConv over 17 kept graphs sorted 34 times in every epoch (CSR and transpose)."""
    import gnnkit.nn as gn
    sorts = []
    real = graph_mod._radix_perm
    monkeypatch.setattr(graph_mod, "_radix_perm", lambda *a, **k: sorts.append(1) or real(*a, **k))
    torch.manual_seed(0)
    conv = gn.SAGEConv(16, 16)
    x = torch.randn(1500, 16, requires_grad=True)
    eis = [torch.randint(0, 1500, (2, 12000)) for _ in range(17)]  # large enough for the cached CSR path
    for epoch in range(3):
        sorts.clear()
        for ei in eis:
            conv(x, ei).sum().backward()
        assert epoch > 0 or len(sorts) >= 17  # the first epoch builds every graph
    assert sorts == []
    set_cache_limit(16, 0)  # the old bound: the 17th graph evicts the first, every visit sorts again
    for ei in eis:
        conv(x, ei).sum().backward()
    assert len(sorts) >= 17


def test_linkpred_interrupt_before_the_first_checkpoint_says_nothing_was_kept(tmp_path, monkeypatch, capsys):
    """Ctrl-C before the first timed save said "continue with the same command and --resume"; the resumed run
    then started over (review)."""
    import gnnkit.linkpred.train as lt
    from gnnkit.cli import console_main

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(lt, "fit", stop)
    ck = tmp_path / "run.pt"
    assert console_main(["linkpred", "Cora", "--epochs", "2", "--no-progress", "--checkpoint", str(ck)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted (nothing was kept yet in {ck}: it is written after an epoch once 10 s" in err
    assert "--resume" not in err
    ck.write_bytes(b"kept")
    assert console_main(["linkpred", "Cora", "--epochs", "2", "--no-progress", "--checkpoint", str(ck)]) == 130
    assert "continue with the same command and --resume" in capsys.readouterr().err


def test_vq_resume_after_a_cut_first_save_with_only_a_temporary_file(tmp_path):
    """Killed while only the side file's temporary copy existed, --resume said "give a run folder written by
    'gnnkit vq train'" instead of naming the cut first save (review)."""
    from gnnkit.latent.train import load_checkpoint
    run = tmp_path / "run"
    run.mkdir()
    (run / ".checkpoint.pt.sha256.tmp-4242-abcdefgh").write_bytes(b"half")
    with pytest.raises(FileNotFoundError, match=r"first save was interrupted \(only \.checkpoint\.pt\.sha256\.tmp"):
        load_checkpoint(run)
    (run / ".checkpoint.pt.sha256.tmp-4242-abcdefgh").unlink()
    with pytest.raises(FileNotFoundError, match="give a run folder written by 'gnnkit vq train'"):
        load_checkpoint(run)


def test_linkpred_resume_mismatch_names_the_flags(tmp_path, capsys):
    """A resume with other settings named LinkPredConfig's fields (neg_method, eval_every) and, for another split,
    not the flag that made it (review)."""
    from gnnkit.cli import console_main
    ck = tmp_path / "run.pt"
    base = ["linkpred", "Cora", "--epochs", "1", "--hidden", "8", "--no-progress", "--checkpoint", str(ck),
            "--checkpoint-every", "0"]
    assert console_main(base) == 0
    capsys.readouterr()
    assert console_main([*base, "--resume", "--neg", "degree", "--eval-every", "2"]) == 2
    err = capsys.readouterr().err
    assert "'--neg': ('uniform', 'degree')" in err and "'--eval-every': (1, 2)" in err and "neg_method" not in err
    assert console_main([*base, "--resume", "--num-val", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "trained on another split" in err and "--num-val" in err and "--normalize-features" in err


def test_gatv2_aggr_reads_as_pygs():
    import torch_geometric.nn as pyg_nn

    import gnnkit.nn as gn
    assert gn.GATv2Conv(4, 4).aggr == pyg_nn.GATv2Conv(4, 4).aggr == "sum"
    assert gn.GATConv(4, 4).aggr == pyg_nn.GATConv(4, 4).aggr


def test_linkpred_errors_keep_paths_whole(tmp_path, capsys):
    """The flag rewriting of resume errors turned a checkpoint path's parts into flags (lp/model.pt ->
    lp/--model.pt) in every error of the run (re-read of this round's diff)."""
    from gnnkit.cli import console_main
    ck = tmp_path / "seed" / "model.pt"
    base = ["linkpred", "Cora", "--epochs", "1", "--hidden", "8", "--no-progress", "--checkpoint", str(ck),
            "--checkpoint-every", "0"]
    assert console_main(base) == 0
    capsys.readouterr()
    assert console_main(base) == 2  # exists, no --resume
    err = capsys.readouterr().err
    assert f"checkpoint {ck} already exists" in err and "--model" not in err and "--seed" not in err
