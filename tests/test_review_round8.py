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
