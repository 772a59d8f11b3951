"""Regressions from the session-13 review of gnnkit.latent: argument checks (NaN, infinities, non-integers),
sample folders after a killed draw, and mmd2's equal-mass condition for the EMD kernel."""
import math

import pytest
import torch
from torch_geometric.data import Data

from gnnkit.latent import io as gio
from gnnkit.latent.gumbel import GumbelQuantizer, TemperatureSchedule
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
