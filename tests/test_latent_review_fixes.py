"""Regressions from the session-13 review of gnnkit.latent: argument checks (NaN, infinities, non-integers),
sample folders after a killed draw, and mmd2's equal-mass condition for the EMD kernel."""
import math

import pytest
import torch
from torch_geometric.data import Data

from gnnkit.latent import io as gio
from gnnkit.latent.gumbel import GumbelQuantizer, TemperatureSchedule, gumbel_noise
from gnnkit.latent.metrics import mmd2
from gnnkit.latent.order import bfs_order
from gnnkit.latent.prior import CodePrior
from gnnkit.latent.vq import VectorQuantizer


@pytest.mark.parametrize("make, name", [
    (lambda: VectorQuantizer(4, 2, ema=True, eps=math.nan), "eps"),
    (lambda: VectorQuantizer(4, 2, dead_code_threshold=math.nan), "dead_code_threshold"),
    (lambda: VectorQuantizer(4, 2, beta=math.inf), "beta"),
    (lambda: VectorQuantizer(2.5, 2), "num_codes"),
    (lambda: VectorQuantizer(True, 2), "num_codes"),
    (lambda: GumbelQuantizer(4, 2, kl_weight=math.nan), "kl_weight"),
    (lambda: GumbelQuantizer(4, 2, kl_weight=math.inf), "kl_weight"),
    (lambda: GumbelQuantizer(2.5, 2), "num_codes"),
    (lambda: TemperatureSchedule("exp", 1.0, 0.1, 2.5), "steps"),
    (lambda: CodePrior(4, 3, top_codes=-1, top_slots=-1), "top_codes"),
])
def test_bad_quantizer_and_prior_arguments_are_named(make, name):
    """NaN passed every `x < 0` check (an EMA codebook of NaN after one step, a KL term silently off) and
    non-integers failed deep in torch."""
    with pytest.raises(ValueError, match=rf"^{name}="):
        make()


def test_bfs_order_names_ids_outside_the_graph():
    with pytest.raises(ValueError, match=r"bfs_order: edge_index holds node ids in \[0, 5\] but num_nodes=3"):
        bfs_order(torch.tensor([[0], [5]]), 3)


def test_mmd2_emd_kernel_refuses_unequal_masses_as_the_kernel_does():
    with pytest.raises(ValueError, match="needs vectors of equal mass"):
        mmd2([[1.0, 0.0]], [[0.0, 3.0]], "gaussian_emd", 1.0, is_hist=False)
    assert mmd2([[1.0, 0.0]], [[0.0, 3.0]], "gaussian_emd", 1.0) > 0  # normalised histograms: fine


def _graphs(k):
    ring = lambda n: torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])  # noqa: E731
    return [Data(edge_index=torch.cat([ring(4), ring(4).flip(0)], 1), num_nodes=4) for _ in range(k)]


def test_a_draw_killed_before_its_first_graph_file_does_not_lock_the_folder(tmp_path, monkeypatch):
    """The folder held only the hidden in-progress list, and every later draw was refused as 'not gnnkit's'."""
    real, calls = gio.atomic_write, []

    def dying(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, data)
    monkeypatch.setattr(gio, "atomic_write", dying)
    with pytest.raises(KeyboardInterrupt):
        gio.write_samples(_graphs(3), tmp_path / "s", {})
    monkeypatch.setattr(gio, "atomic_write", real)
    gio.write_samples(_graphs(3), tmp_path / "s", {})
    assert sorted(p.name for p in (tmp_path / "s").glob("graph_*")) == [
        f"graph_{i:03d}.{e}" for i in range(3) for e in ("pt", "txt")]


def test_a_draw_killed_while_removing_an_earlier_draws_extra_files_leaves_them_to_the_next(tmp_path, monkeypatch):
    """A smaller draw writes samples.json, then removes the earlier draw's extra graph files; killed in between,
    those extras were forgotten and stayed for good beside a samples.json that does not list them."""
    out = tmp_path / "s"
    gio.write_samples(_graphs(6), out, {})
    real_unlink = type(out).unlink

    def failing(self, missing_ok=False):
        if self.name.startswith("graph_"):
            raise KeyboardInterrupt
        return real_unlink(self, missing_ok=missing_ok)
    monkeypatch.setattr(type(out), "unlink", failing)
    with pytest.raises(KeyboardInterrupt):
        gio.write_samples(_graphs(3), out, {})
    monkeypatch.setattr(type(out), "unlink", real_unlink)
    gio.write_samples(_graphs(2), out, {})
    want = [f"graph_{i:03d}.{e}" for i in range(2) for e in ("pt", "txt")]
    assert sorted(p.name for p in out.glob("graph_*")) == want


def test_fsq_turns_a_nan_input_into_a_nan_loss():
    """A NaN input gave a normal-looking code (NaN cast to an integer) and a loss of 0; VQ gives a NaN loss."""
    from gnnkit.latent.fsq import FSQ
    q = FSQ((8, 5, 5))
    assert math.isnan(float(q(torch.tensor([[0.1, math.nan, 0.3]])).loss))
    assert float(q(torch.randn(4, 3)).loss) == 0.0


def test_reconstruction_restores_the_models_mode(tmp_path):
    """Review (session 13): VQRun.reconstruction() left the model in eval mode (and ran under autograd)."""
    from gnnkit.latent.datasets import community_small, to_pyg
    from gnnkit.latent.order import canonical
    from gnnkit.latent.train import VQRun, config_for
    cfg = config_for("community-small", quantizer="vq", levels=1, epochs=1, batch_size=8, hidden=16, layers=1,
                     codes=8, code_dim=4, heads=2)
    run = VQRun.create(cfg, tmp_path / "r")
    run.model.train()
    res = run.reconstruction([canonical(d) for d in to_pyg(community_small(4, seed=0))])
    assert run.model.training and 0.0 <= res["edge_accuracy"] <= 1.0


def test_an_interrupted_vq_train_names_the_command_that_continues_it(tmp_path, monkeypatch, capsys):
    """Review (session 13): Ctrl-C printed "continue with the same command and --resume", which fails for vq
    (--resume takes the run folder and refuses the other flags), and an auto-named folder was never shown."""
    from gnnkit.cli import console_main
    from gnnkit.latent.train import VQRun

    def interrupted(self, progress=True):
        raise KeyboardInterrupt
    monkeypatch.setattr(VQRun, "fit", interrupted)
    out = tmp_path / "run"
    rc = console_main(["vq", "train", "community-small", "--epochs", "1", "--prior-epochs", "1", "--hidden", "16",
                       "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 130 and f"continue with: gnnkit vq train --resume {out}" in err
    assert "same command" not in err


def test_a_run_made_from_your_own_graphs_resumes_only_with_them(tmp_path):
    """Review (session 14): VQRun.resume loaded the built-in community-small under the run's own dataset's name,
    so training and evaluate() silently used the wrong graphs; sample's bad counts/seeds were raw errors."""
    import networkx as nx

    from gnnkit.latent.datasets import GenerationDataset
    from gnnkit.latent.train import VQConfig, VQRun
    gs = [nx.path_graph(4), nx.cycle_graph(5), nx.star_graph(3), nx.complete_graph(4), nx.path_graph(6)]
    mine = GenerationDataset("mine", gs[1:], gs[:1], "my graphs", 8)
    cfg = VQConfig(codes=8, code_dim=4, hidden=16, heads=2, layers=1, decoder_layers=1, prior_d_model=16,
                   prior_layers=1, epochs=1, prior_epochs=1, prior_orderings=1)
    VQRun.create(cfg, tmp_path / "r", data=mine).fit(progress=False)
    with pytest.raises(ValueError, match="your own dataset 'mine'.*data=<that GenerationDataset>"):
        VQRun.resume(tmp_path / "r")
    run = VQRun.resume(tmp_path / "r", data=mine)
    assert run.data is mine
    other = GenerationDataset("mine", gs[2:], gs[:1], "fewer graphs", 8)
    with pytest.raises(ValueError, match="is not the dataset this run was made from"):
        VQRun.resume(tmp_path / "r", data=other)
    sampler = VQRun.resume(tmp_path / "r", load_data=False)  # sampling needs no data
    assert len(sampler.sample(2, seed=1).graphs) == 2
    for kw, name in ((dict(num_samples=2.5), "num_samples"), (dict(num_samples=True), "num_samples"),
                     (dict(num_samples=2, seed=1.5), "seed"), (dict(num_samples=2, seed=2 ** 64), "seed")):
        with pytest.raises(ValueError, match=f"VQRun.sample: {name}"):
            sampler.sample(**kw)


def test_one_way_edge_lists_are_refused_where_they_would_lose_edges(tmp_path):
    """Review (session 14): an edge listed once as (j, i) became a non-edge in the VQ-VAE's targets and vanished
    from the saved edge lists; a wrongly shaped codes.top decoded from broadcast codes."""
    from torch_geometric.data import Batch
    from torch_geometric.utils import to_undirected

    from gnnkit.latent import GraphVQVAE, HierarchicalGraphVQVAE, canonical
    one_way = Data(edge_index=torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]]), num_nodes=5)
    both = Data(edge_index=to_undirected(one_way.edge_index), num_nodes=5)
    with pytest.raises(ValueError, match="canonical: edge_index must list every edge in both directions"):
        canonical(one_way)
    m = GraphVQVAE(VectorQuantizer(8, 4), max_nodes=8, hidden_channels=16, num_layers=1, decoder_layers=1, heads=2,
                   edge_channels=8)
    with pytest.raises(ValueError, match="both directions"):
        m(Batch.from_data_list([one_way]))
    assert int(m(Batch.from_data_list([canonical(both)])).edge_targets.sum()) == 4
    with pytest.raises(ValueError, match="write_samples: graph 1: edge_index must list"):
        gio.write_samples([both, one_way], tmp_path / "s", {})
    assert not (tmp_path / "s").exists()  # refused before anything was written
    h = HierarchicalGraphVQVAE(VectorQuantizer(8, 4), VectorQuantizer(8, 4), max_nodes=8, top_slots=2,
                               hidden_channels=16, num_layers=1, decoder_layers=1, heads=2, edge_channels=8)
    codes = h.encode(Batch.from_data_list([canonical(both), canonical(both)]))
    assert len(h.decode(codes)) == 2
    for bad in (codes.top[:, :1], codes.top[:1]):
        with pytest.raises(ValueError, match=r"codes.top must be \[num_graphs=2, top_slots=2\]"):
            h.decode(codes._replace(top=bad))


def test_decode_returns_the_reconstructed_features():
    """Review (session 14): a model with in_channels > 0 learns to reconstruct x, but decode() dropped it."""
    from torch_geometric.data import Batch

    from gnnkit.latent import FSQ, GraphVQVAE
    from gnnkit.latent.datasets import community_small, to_pyg
    from gnnkit.latent.order import canonical
    torch.manual_seed(0)
    graphs = [canonical(d) for d in to_pyg(community_small(3, seed=0))]
    for g in graphs:
        g.x = torch.randn(g.num_nodes, 3)
    batch = Batch.from_data_list(graphs)
    model = GraphVQVAE(FSQ([5, 5]), 20, in_channels=3, hidden_channels=16, heads=2)
    decoded = model.decode(model.encode(batch))
    seen = []  # the forward pass's own reconstruction of x from the same codes
    hook = model.decoder.feat_head.register_forward_hook(lambda m, i, o: seen.append(o))
    model.eval()
    with torch.no_grad():
        model(batch)
    hook.remove()
    assert [tuple(d.x.shape) for d in decoded] == [(g.num_nodes, 3) for g in graphs]
    assert torch.allclose(torch.cat([d.x for d in decoded]), seen[0], atol=1e-5)
    plain = GraphVQVAE(FSQ([5, 5]), 20, hidden_channels=16, heads=2).decode(model.encode(batch))
    assert all(getattr(d, "x", None) is None for d in plain)


def test_evaluate_refuses_zero_samples(tmp_path):
    """Review (session 14): evaluate(num_samples=0) silently sampled as many graphs as the test set."""
    from gnnkit.latent.train import VQRun, config_for
    cfg = config_for("community-small", quantizer="vq", levels=1, epochs=1, batch_size=8, hidden=16, layers=1,
                     codes=8, code_dim=4, heads=2)
    run = VQRun.create(cfg, tmp_path / "r")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="VQRun.evaluate: num_samples"):
            run.evaluate(num_samples=bad)
    with pytest.raises(ValueError, match="VQRun.evaluate: repeats"):
        run.evaluate(repeats=0)


def test_vq_train_refuses_flags_the_run_would_not_use(tmp_path, capsys, monkeypatch):
    """Review (session 15): --fsq-symmetric/--fsq-levels with --quantizer vq, --top-codes/--top-slots with one
    level, --top-codes with FSQ's fixed top grid: silently ignored but saved in the run's settings."""
    from gnnkit.cli import console_main
    monkeypatch.chdir(tmp_path)
    tiny = ["--epochs", "1", "--prior-epochs", "1", "--hidden", "16", "--no-progress"]
    for flags, named in ((["--fsq-symmetric"], "--fsq-symmetric applies to --quantizer fsq"),
                         (["--fsq-levels", "4,4"], "--fsq-levels applies only with --quantizer fsq"),
                         (["--top-codes", "4"], "--top-codes applies only with --levels 2"),
                         (["--top-slots", "3"], "--top-slots applies only with --levels 2"),
                         (["--quantizer", "fsq", "--levels", "2", "--top-codes", "16"],
                          "--top-codes applies only with --quantizer vq or gumbel"),
                         (["--quantizer", "fsq", "--fsq-levels", ",".join(["3"] * 20)], "--fsq-levels gives"),
                         (["--codes", str(2 ** 20)], "--codes gives 1,048,576 codes"),
                         (["--quantizer", "fsq", "--fsq-levels", "1002"], "each level must be <= 1000"),
                         (["--heads", "3"], "must be divisible by --heads 3"),
                         # review (session 24): FSQ's K and width come from its levels; one fixed order per graph
                         # (since 2026-12-05 --codes K picks FSQ's levels, as issue 10 writes the command; it
                         # must agree with --fsq-levels and split into levels 3..8)
                         (["--quantizer", "fsq", "--codes", "128", "--fsq-levels", "8,5,5"], "disagree"),
                         (["--quantizer", "fsq", "--codes", "67"], "no product of levels between 3 and 8"),
                         (["--quantizer", "fsq", "--code-dim", "8"], "--code-dim applies only with --quantizer vq"),
                         (["--canonical-order", "--prior-orderings", "4"],
                          "--prior-orderings applies only with random BFS orders (drop --canonical-order)")):
        assert console_main(["vq", "train", "community-small", *tiny, *flags]) == 2, flags
        assert named in capsys.readouterr().err, flags
    assert not any(tmp_path.iterdir())  # nothing was started


def test_fsq_limits_and_its_collapse_advice():
    import warnings

    from gnnkit.latent import FSQ, GraphVQVAE, HierarchicalGraphVQVAE
    from gnnkit.latent._common import QuantizerCollapseWarning
    with pytest.raises(ValueError, match=r"give 36,472,996,377,170,786,403 codes; at most 16,777,216"):
        FSQ([3] * 41)  # was a raw TypeError (overflow)
    with pytest.raises(ValueError, match="fix: levels <= 1000 or a smaller eps"):
        FSQ([1002])
    q = FSQ([8, 5], min_usage=0.5)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            q(torch.full((200, 2), 5.0))  # every vector on one grid point
    (w,) = [x for x in seen if issubclass(x.category, QuantizerCollapseWarning)]
    assert "kmeans_init" not in str(w.message) and "fewer levels" in str(w.message)
    h = HierarchicalGraphVQVAE(FSQ([5, 5]), FSQ([8, 4]), 10, hidden_channels=16, heads=2, top_slots=1)
    assert h.top_quantizer.monitor.label == "top level" and h.quantizer.monitor.label == "node level"
    assert GraphVQVAE(FSQ([5, 5]), 10, hidden_channels=16, heads=2).quantizer.monitor.label == ""


def test_a_file_that_is_no_checkpoint_is_named_without_torchs_unpickling_advice(tmp_path):
    from gnnkit.latent.train import CheckpointError, load_checkpoint
    p = tmp_path / "model.pt"
    torch.save({"x": torch.nn.Linear(2, 2)}, p)  # a module: weights_only refuses it
    with pytest.raises(CheckpointError) as e:  # and no side-file warning first: it is no checkpoint at all
        load_checkpoint(p)
    assert "not a gnnkit VQ checkpoint" in str(e.value) and "weights_only" not in str(e.value)


@pytest.mark.parametrize("levels", [(8, 5, 5), (3, 3, 3), (2, 4)])
def test_fsq_gives_a_nan_input_index_0_in_every_channel(levels):
    """Review 2026-12-05: a NaN cast to an integer is INT64_MIN; times an odd basis entry (always channel 0) the
    index was negative and code_counts' bincount raised torch's error, times an even one it wrapped to a
    normal-looking code.  Now a NaN row gets index 0 (as VQ gives it) and the loss is NaN."""
    from gnnkit.latent.fsq import FSQ
    q = FSQ(levels)
    for channel in range(len(levels)):
        z = torch.full((3, len(levels)), 0.2)
        z[1, channel] = math.nan
        out = q(z)
        assert math.isnan(float(out.loss))
        assert out.indices[1] == 0 and out.indices[0] == out.indices[2] == q(z[:1]).indices[0]


def test_tiny_temperatures_give_the_greedy_limit_not_nan():
    """Review 2026-12-05: below ~1e-37, (logits + g) / tau overflowed to inf and softmax gave NaN (all codes 0,
    NaN gradients); the prior's multinomial raised on the NaN probabilities.  The maximum now comes off first."""
    p = CodePrior(5, 4, parts=2, d_model=16, layers=1, heads=2)
    greedy = p.sample(num_samples=3, generator=torch.Generator().manual_seed(5), temperature=1e-30)
    for tau in (1e-40, 1e-46, 1e-300):  # below float32's smallest normal, and below its smallest subnormal
        logits = torch.randn(6, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
        q = GumbelQuantizer(8, 4, temperature=tau).train()
        out = q(logits, generator=torch.Generator().manual_seed(1))
        out.quantized.sum().backward()
        assert torch.isfinite(out.quantized).all() and torch.isfinite(logits.grad).all()
        noisy = logits.detach() + gumbel_noise(logits.shape, torch.Generator().manual_seed(1), logits.device)
        assert torch.equal(out.indices, noisy.argmax(-1))  # the hard limit: the perturbed argmax
        cold = p.sample(num_samples=3, generator=torch.Generator().manual_seed(0), temperature=tau)
        assert [s.tolist() for s in cold] == [s.tolist() for s in greedy]  # deterministic: the argmax each step


def _tiny_cfg(**kw):
    from gnnkit.latent.train import VQConfig
    return VQConfig(codes=8, code_dim=4, hidden=16, heads=2, layers=1, decoder_layers=1, prior_d_model=16,
                    prior_layers=1, epochs=1, prior_epochs=1, prior_orderings=1, **kw)


def test_a_run_made_from_a_built_in_set_with_other_graphs_does_not_resume_on_the_default_ones(tmp_path):
    """Review (2026-12-05, third round): a run created from load_generation_dataset('community-small', seed=5)
    saved data_seed 0, and VQRun.resume / `gnnkit vq eval` / `vq train --resume` reloaded the seed-0 graphs (same
    name and sizes) without a word: MMD against the wrong test set.  Runs now keep their data's fingerprint."""
    from gnnkit.latent.datasets import GenerationDataset, dataset_fingerprint, load_generation_dataset
    from gnnkit.latent.train import VQRun
    seed5 = load_generation_dataset("community-small", seed=5)
    shifted = GenerationDataset(seed5.name, seed5.train[1:] + seed5.train[:1], seed5.test, seed5.description,
                                seed5.max_nodes)
    assert dataset_fingerprint(shifted) != dataset_fingerprint(seed5)
    VQRun.create(_tiny_cfg(), tmp_path / "r", data=seed5).fit(progress=False)
    with pytest.raises(ValueError, match="differ from the ones .* was trained on.*data=<that GenerationDataset>"):
        VQRun.resume(tmp_path / "r")  # reloads community-small with data_seed 0: other graphs, same sizes
    with pytest.raises(ValueError, match="differ from the ones .* was trained on.*the run was created with"):
        VQRun.resume(tmp_path / "r", data=shifted)
    assert VQRun.resume(tmp_path / "r", data=load_generation_dataset("community-small", seed=5)).stage == "done"


def test_vq_config_refuses_values_of_the_wrong_type_by_name():
    """Review (2026-12-05, third round): ema='no' was saved and read as true, epochs=True as 1 epoch; lr='0.1'
    failed with "'<' not supported"; numpy integers were refused as "not an integer"."""
    import numpy as np

    from gnnkit.latent.train import config_for
    for kw, msg in ((dict(ema="no"), "ema must be True or False"), (dict(random_order="no"), "random_order must be"),
                    (dict(epochs=True), "--epochs \\(epochs\\) must be an integer"),
                    (dict(lr="0.1"), "--lr \\(lr\\) must be a number"), (dict(threshold="0.5"), "--threshold"),
                    (dict(beta=-1.0), "--beta must lie in"), (dict(prior_dropout=1.0), "--prior-dropout must lie"),
                    (dict(tau_end=0.0), "--tau-end must lie in"), (dict(kl_weight=float("nan")), "kl-weight")):
        with pytest.raises(ValueError, match=msg):
            config_for("community-small", **kw)
    cfg = config_for("community-small", seed=np.int64(3), epochs=np.int32(2), ema=np.bool_(False), lr=np.float32(0.5))
    assert (cfg.seed, cfg.epochs, cfg.ema) == (3, 2, False) and type(cfg.seed) is int and type(cfg.ema) is bool


def test_generation_sets_and_sampling_name_bad_arguments():
    from gnnkit.latent.datasets import community_small, load_generation_dataset
    with pytest.raises(ValueError, match="max_nodes_choices must hold integers"):
        community_small(3, max_nodes_choices=[12.9])  # was truncated to 12
    with pytest.raises(ValueError, match="seed must be >= 0"):
        community_small(3, seed=-1)
    with pytest.raises(ValueError, match="p_inter='x' must be a finite number"):
        community_small(3, p_inter="x")
    with pytest.raises(ValueError, match="test_fraction='0.2' must be a finite number"):
        load_generation_dataset("community-small", test_fraction="0.2")
    prior = CodePrior(4, 3)
    with pytest.raises(ValueError, match="temperature='1' must be a finite number > 0"):
        prior.sample(num_samples=1, temperature="1")


def test_evaluate_takes_one_protocol_by_name_and_names_its_own_seed(tmp_path):
    from gnnkit.latent.datasets import load_generation_dataset
    from gnnkit.latent.train import VQRun
    run = VQRun.create(_tiny_cfg(), tmp_path / "r", data=load_generation_dataset("community-small"))
    run.fit(progress=False)
    res = run.evaluate(num_samples=2, repeats=1, protocols="gran", progress=False)
    assert "mmd_gran" in res["runs"][0] and "mmd_g" not in res["runs"][0]
    with pytest.raises(ValueError, match="VQRun.evaluate: seed"):
        run.evaluate(num_samples=2, repeats=1, seed=-1, progress=False)


def test_a_foreign_file_warns_of_no_side_file_only_if_it_is_a_checkpoint(tmp_path):
    import warnings

    from gnnkit.latent.train import CheckpointError, load_checkpoint
    f = tmp_path / "notes.pt"
    f.write_text("not a checkpoint\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the side-file warning came first
        with pytest.raises(CheckpointError, match="is not a"):
            load_checkpoint(f)


def test_the_fingerprint_reads_integer_labels_by_value_and_configs_take_0_and_1_as_bools():
    import networkx as nx
    import numpy as np

    from gnnkit.latent.datasets import GenerationDataset, dataset_fingerprint
    from gnnkit.latent.train import config_for

    def labelled(cast):
        G = nx.path_graph(4)
        nx.set_node_attributes(G, {v: cast(v % 3) for v in G}, "label")
        return GenerationDataset("mine", [G], [G], "", 4, num_node_labels=3)

    assert dataset_fingerprint(labelled(int)) == dataset_fingerprint(labelled(np.int64))
    assert dataset_fingerprint(labelled(int)) != dataset_fingerprint(labelled(lambda v: (v + 1) % 3))
    cfg = config_for("community-small", ema=1, random_order=0)  # validated before the type checks: still does
    assert cfg.ema is True and cfg.random_order is False
    with pytest.raises(ValueError, match="ema must be True or False"):
        config_for("community-small", ema=2)
