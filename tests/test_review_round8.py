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
