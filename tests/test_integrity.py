"""Saved files carry their SHA-256 and are checked on every read and by ``gnnkit verify``: results, logs
and checkpoints (side files), splits (manifest), samples (samples.json), datasets (SHA256SUMS); a process
killed while overwriting one leaves the old or the new file, each verifying."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gnnkit._atomic import (
    IntegrityError,
    digest_path,
    read_json_verified,
    read_verified,
    verify_file,
    write_json_verified,
    write_verified,
)
from gnnkit.cli import console_main
from gnnkit.integrity import BAD, OK, UNCHECKED, verify


def _flip(path, at=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    path.write_bytes(bytes(data))


def test_verified_write_read_and_detection(tmp_path):
    p = tmp_path / "r.json"
    write_json_verified({"auc": 0.9}, p)
    assert read_json_verified(p) == {"auc": 0.9} and verify_file(p) is True
    assert digest_path(p).read_text().split()[1] == "r.json"  # sha256sum's line format
    _flip(p, at=3)
    with pytest.raises(IntegrityError, match="r.json: its SHA-256"):
        read_json_verified(p)
    q = tmp_path / "plain.json"
    q.write_text("{}")
    assert verify_file(q) is None  # no record: not claimed good
    bad = tmp_path / "bad.json"
    write_verified(bad, b"{not json")
    with pytest.raises(IntegrityError, match="bad.json: not valid JSON"):
        read_json_verified(bad)


def _interrupted_write(path, data, stop_at):
    """write_verified(path, data) killed before its ``stop_at``-th rename (1: side file, 2: data, 3: final
    side file)."""
    import gnnkit._atomic as atomic
    calls = []
    real = atomic.atomic_write

    def stop(p, d):
        calls.append(p)
        if len(calls) == stop_at:
            raise KeyboardInterrupt  # the process dies here
        real(p, d)
    atomic.atomic_write = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            write_verified(path, data)
    finally:
        atomic.atomic_write = real


@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_a_kill_at_any_rename_leaves_a_verifying_file(tmp_path, stop_at):
    p = tmp_path / "c.pt"
    write_verified(p, b"old")
    assert digest_path(p).read_text().count("\n") == 1  # a finished write: one sha256sum line
    _interrupted_write(p, b"new", stop_at)
    assert read_verified(p) == (b"new" if stop_at == 3 else b"old")
    _interrupted_write(p, b"newer", 2)  # a second interrupted write in a row
    assert read_verified(p) in (b"old", b"new")
    p.write_bytes(b"other")
    with pytest.raises(IntegrityError):
        read_verified(p)


def test_a_kill_over_a_file_without_a_side_file_or_with_a_damaged_one(tmp_path):
    legacy = tmp_path / "log.json"
    legacy.write_text('{"runs": {}}')  # written before gnnkit kept side files
    _interrupted_write(legacy, b'{"runs": 1}', 2)
    assert read_verified(legacy) == b'{"runs": {}}'
    damaged = tmp_path / "res.json"
    write_verified(damaged, b"{}")
    digest_path(damaged).write_bytes(b"\xff\xfe")
    write_verified(damaged, b'{"a": 1}')  # the next save repairs it instead of failing after the work
    assert read_json_verified(damaged) == {"a": 1}
    corrupt = tmp_path / "x.pt"
    write_verified(corrupt, b"good")
    corrupt.write_bytes(b"bad!")
    _interrupted_write(corrupt, b"new", 2)  # a corrupted file is not blessed by the next write's side file
    with pytest.raises(IntegrityError):
        read_verified(corrupt)


def test_verify_while_a_writer_overwrites_reports_no_false_alarm(tmp_path):
    import threading
    p = tmp_path / "r.json"
    write_json_verified({"i": 0}, p)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            write_json_verified({"i": i, "pad": "x" * (i % 300)}, p)
    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(3000):
            verify_file(p)
    finally:
        stop.set()
        t.join()


def test_results_overwritten_survive_sigkill_at_random_points(tmp_path):
    """A process overwriting a verified JSON file in a loop is SIGKILLed at random moments; after every kill
    the file reads back whole and verified (one of the versions written), never half-written or refused."""
    target = tmp_path / "results.json"
    script = textwrap.dedent(f"""
        import sys
        from gnnkit._atomic import write_json_verified
        i = 0
        while True:
            write_json_verified({{"i": i, "pad": "x" * (1000 + 997 * (i % 50))}}, {str(target)!r})
            i += 1
            if i == 3:
                print("ready", flush=True)
    """)
    rng = random.Random(0)
    seen = set()
    for _ in range(12):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.05))
        p.send_signal(signal.SIGKILL)
        p.wait()
        obj = read_json_verified(target)
        assert len(obj["pad"]) == 1000 + 997 * (obj["i"] % 50)
        seen.add(obj["i"])
    assert len(seen) > 1


def test_gnnkit_verify_reports_ok_bad_and_unchecked(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_json_verified({"a": 1}, run / "results.json")
    write_verified(run / "checkpoint.pt", b"weights")
    (run / "notes.json").write_text("{}")
    found = {f.path.name: f.status for f in verify(run)}
    assert found == {"results.json": OK, "checkpoint.pt": OK, "notes.json": UNCHECKED}
    assert console_main(["verify", str(run)]) == 0
    assert console_main(["verify", "--strict", str(run)]) == 1
    _flip(run / "checkpoint.pt")
    capsys.readouterr()
    assert console_main(["verify", str(run / "checkpoint.pt")]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.pt: its SHA-256" in err and err.count("\n") == 1
    assert console_main(["verify", str(tmp_path / "missing")]) == 2
    # a missing path does not hide a damaged one given with it (review: the damaged file was never reported)
    capsys.readouterr()
    assert console_main(["verify", str(run), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: its SHA-256" in err and "missing" in err


def test_cli_results_carry_a_side_file_and_split_samples_datasets_verify(tmp_path):
    out = tmp_path / "train.json"
    assert console_main(["train", "--runs", "1", "--epochs", "2", "--out", str(out)]) == 0
    assert verify_file(out) is True and json.loads(out.read_text())
    split = tmp_path / "split"
    assert console_main(["split", "Cora", "--out", str(split)]) == 0
    assert [f.status for f in verify(split)] == [OK]
    _flip(split / "train.pt")
    (f,) = verify(split)
    assert f.status == BAD and "train.pt" in f.detail
    from pathlib import Path
    data = Path(__file__).resolve().parents[1] / "datasets"
    assert {f.status for f in verify(data)} == {OK}


def test_samples_folder_lists_every_file_hash(tmp_path):
    import torch
    from torch_geometric.data import Data

    from gnnkit.latent.io import write_samples
    g = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    write_samples([g, g], tmp_path / "s", {"model": "test"})
    assert [f.status for f in verify(tmp_path / "s")] == [OK]  # samples.json (with its side file) and its hashes
    _flip(tmp_path / "s" / "graph_001.txt", at=0)
    statuses = {f.path.name: f.status for f in verify(tmp_path / "s")}
    assert statuses["graph_001.txt"] == BAD
    parent = verify(tmp_path)  # a folder above: the sample folder is found and checked as such
    assert [f.path.name for f in parent if f.status == BAD] == ["graph_001.txt"]
    _flip(tmp_path / "s" / "samples.json", at=5)
    assert [f.status for f in verify(tmp_path / "s")] == [BAD]  # reported once


def test_two_processes_writing_one_file_leave_a_verifying_pair(tmp_path):
    """Two runs saving to the same path (e.g. two `gnnkit train --out same.json`) take turns through the
    folder lock, so the last side file always describes the last data."""
    target = tmp_path / "same.json"
    script = textwrap.dedent(f"""
        import sys
        from gnnkit._atomic import write_json_verified
        for i in range(150):
            write_json_verified({{"writer": sys.argv[1], "i": i, "pad": "x" * (i % 97)}}, {str(target)!r})
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", script, w], env=env) for w in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    obj = read_json_verified(target)
    assert obj["i"] == 149 and digest_path(target).read_text().count("\n") == 1


def test_json_writers_write_strict_json(tmp_path):
    """Review finding: NaN and ±inf were written as bare NaN / Infinity (json.dumps never passes a float to
    default=), so the documented "NaN written as null" did not hold and strict parsers refused the file."""
    import json
    import math

    import numpy as np

    from gnnkit._atomic import read_json_verified, write_json_atomic, write_json_verified
    obj = {"auc": float("nan"), "x": float("inf"), "runs": [1.5, float("-inf"), np.float32("nan"), np.float64(2.5)],
           "ok": True, "n": 3, "t": (0.5, math.nan)}
    want = {"auc": None, "x": None, "runs": [1.5, None, None, 2.5], "ok": True, "n": 3, "t": [0.5, None]}

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))

    write_json_atomic(obj, tmp_path / "a.json")
    assert strict((tmp_path / "a.json").read_text()) == want
    write_json_verified(obj, tmp_path / "b.json")
    assert strict((tmp_path / "b.json").read_text()) == want and read_json_verified(tmp_path / "b.json") == want


def _killed_after(write, k):
    """``write`` (an atomic_write) that raises KeyboardInterrupt, as a kill would, at its ``k + 1``-th call."""
    calls = []

    def killed(path, data):
        calls.append(path)
        if len(calls) > k:
            raise KeyboardInterrupt
        write(path, data)
    return killed


def test_a_draw_killed_before_its_manifest_leaves_nothing_for_the_next_draw(tmp_path, monkeypatch):
    """Review finding: a 40-graph draw killed after its graph files but before samples.json left 36 files that a
    later 4-graph draw never removed (the folder mixed two draws; only the earlier manifest was consulted)."""
    import torch
    from torch_geometric.data import Data

    import gnnkit.latent.io as lio
    g = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    out = tmp_path / "s"
    lio.write_samples([g] * 4, out, {"model": "test"})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # after the graph files, before graphs.png and samples.json
    monkeypatch.setattr(lio, "draw_grid", killed)
    with pytest.raises(KeyboardInterrupt):
        lio.write_samples([g] * 12, out, {"model": "test"})
    assert len(list(out.glob("graph_*.txt"))) == 12
    monkeypatch.undo()
    lio.write_samples([g] * 4, out, {"model": "test"})
    assert sorted(p.name for p in out.glob("graph_*.txt")) == [f"graph_{i:03d}.txt" for i in range(4)]
    assert not (out / ".draw-in-progress.json").exists()
    (out / "graph_007.txt").write_text("mine")  # a user's own file, listed by no draw: kept
    lio.write_samples([g] * 2, out, {"model": "test"})
    assert (out / "graph_007.txt").read_text() == "mine" and not (out / "graph_003.txt").exists()


def test_a_killed_draw_does_not_cost_a_user_file_it_never_wrote(tmp_path, monkeypatch):
    """Review finding: the in-progress list named every file a killed draw was about to write; the next draw then
    removed a user's own graph_005.txt that the killed draw had not reached."""
    import time

    import torch
    from torch_geometric.data import Data

    import gnnkit.latent.io as lio
    g = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    out = tmp_path / "s"
    lio.write_samples([g] * 3, out, {"model": "test"})
    (out / "graph_005.txt").write_text("mine")
    time.sleep(0.05)
    # the list, then graph_000.txt: killed before anything else
    monkeypatch.setattr(lio, "atomic_write", _killed_after(lio.atomic_write, 2))
    with pytest.raises(KeyboardInterrupt):
        lio.write_samples([g] * 8, out, {"model": "test"})
    monkeypatch.undo()
    lio.write_samples([g] * 3, out, {"model": "test"})
    assert (out / "graph_005.txt").read_text() == "mine"


def test_verify_checks_a_dataset_folder_below_its_root_and_the_processed_files(tmp_path):
    """Review (session 14): `gnnkit verify ROOT/planetoid/Cora` found no SHA256SUMS there and checked nothing
    (exit 0); verify never hashed the processed files (only the load did); a mismatch blamed the file alone."""
    import shutil
    from pathlib import Path

    from gnnkit.data import load_dataset
    bundled = Path(__file__).resolve().parents[1] / "datasets"
    cora = tmp_path / "planetoid" / "Cora"
    shutil.copytree(bundled / "planetoid" / "Cora" / "raw", cora / "raw")
    lines = [ln for ln in (bundled / "SHA256SUMS").read_text().splitlines() if "planetoid/Cora/" in ln]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    load_dataset("Cora", root=str(tmp_path))  # builds processed/ and records its hashes
    found = {(f.path.name, f.status) for f in verify(cora)}
    assert found == {("Cora", OK), ("processed", OK)}, found
    # a processed file changed after its build: verify names it and leaves it (the load removes and rebuilds)
    data_pt = cora / "processed" / "data.pt"
    _flip(data_pt, at=len(data_pt.read_bytes()) // 2)
    (bad,) = [f for f in verify(tmp_path) if f.status == BAD]
    assert bad.path == cora / "processed" and "['data.pt'] changed since they were built" in bad.detail
    assert data_pt.exists()
    _flip(data_pt, at=len(data_pt.read_bytes()) // 2)
    one = cora / "raw" / "ind.cora.x"
    assert [(f.status, f.detail) for f in verify(one)] == [(OK, f"SHA-256 matches {tmp_path / 'SHA256SUMS'}")]
    _flip(one, at=10)
    (bad,) = [f for f in verify(cora) if f.status == BAD]
    assert bad.path == one and "or its line in" in bad.detail and "restore the original file" in bad.detail
    assert [f.status for f in verify(one)] == [BAD]
    assert console_main(["verify", str(cora)]) == 1


def test_verify_below_an_unrelated_sha256sums_and_through_linked_dataset_folders(tmp_path):
    """Review (session 15): a SHA256SUMS above a folder that is no dataset's (a project's release sums) made
    `verify --strict` of a sample folder fail, and a damaged one turned every path below it bad; a dataset
    folder linked from elsewhere was skipped (resolved paths), so `verify ROOT/sub` said fine where
    `verify ROOT` said bad."""
    import os
    import shutil
    from pathlib import Path

    import torch
    from torch_geometric.data import Data

    from gnnkit.latent.io import write_samples
    proj = tmp_path / "proj"
    (proj / "runs").mkdir(parents=True)
    (proj / "SHA256SUMS").write_text(f"{'e3b0' * 16}  dist/x.tar.gz\n")
    g = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    write_samples([g], proj / "runs" / "s", {"model": "test"})
    assert [f.status for f in verify(proj / "runs" / "s")] == [OK]
    assert console_main(["verify", "--strict", str(proj / "runs" / "s")]) == 0
    (proj / "SHA256SUMS").write_bytes(b"\xff\xfe bad\n")
    assert [f.status for f in verify(proj / "runs" / "s")] == [OK]
    assert [f.status for f in verify(proj / "runs" / "s" / "graph_000.txt")] == [UNCHECKED]
    # a data root whose dataset folder is a link to storage elsewhere
    bundled = Path(__file__).resolve().parents[1] / "datasets"
    store, root = tmp_path / "store", tmp_path / "root"
    shutil.copytree(bundled / "tu" / "MUTAG", store / "MUTAG", ignore=shutil.ignore_patterns("processed"))
    (root / "tu").mkdir(parents=True)
    os.symlink(store / "MUTAG", root / "tu" / "MUTAG")
    lines = [ln for ln in (bundled / "SHA256SUMS").read_text().splitlines() if "tu/MUTAG/" in ln]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    sub = root / "tu" / "MUTAG"
    assert {f.status for f in verify(sub)} == {OK} and {f.status for f in verify(root)} == {OK}
    one = sub / "raw" / "MUTAG_A.txt"
    _flip(one, at=3)
    for path in (root, sub, one):
        assert [f.path.name for f in verify(path) if f.status == BAD] == ["MUTAG_A.txt"], path


def test_verify_strict_flags_a_samples_manifest_without_its_side_file_and_unrecorded_processed_files(tmp_path):
    """Review (session 15): `verify --strict` passed a sample folder whose samples.json had lost its side file,
    and a dataset folder whose processed files have no recorded hashes (built by PyG itself)."""
    import shutil
    from pathlib import Path

    import torch
    from torch_geometric.data import Data

    from gnnkit.latent.io import write_samples
    g = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    write_samples([g], tmp_path / "s", {"model": "test"})
    (tmp_path / "s" / "samples.json.sha256").unlink()
    assert sorted(f.status for f in verify(tmp_path / "s")) == [OK, UNCHECKED]
    assert console_main(["verify", "--strict", str(tmp_path / "s")]) == 1
    bundled = Path(__file__).resolve().parents[1] / "datasets"
    cora = tmp_path / "planetoid" / "Cora"
    shutil.copytree(bundled / "planetoid" / "Cora" / "raw", cora / "raw")
    (cora / "processed").mkdir()
    (cora / "processed" / "data.pt").write_bytes(b"built elsewhere")
    assert [(f.path.name, f.status) for f in verify(cora)] == [("processed", UNCHECKED)]


def test_outputs_never_replace_devices_or_links_and_expand_home(tmp_path, monkeypatch):
    """Review (2026-12-05): an output path that is a device (/dev/null, as root) or a link was replaced by the
    atomic rename; `--out=~/x` (no shell expansion after '=') was checked under $HOME but written to ./~/x."""
    import argparse

    from gnnkit._atomic import atomic_write
    from gnnkit.commands import _args
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for bad in ("/dev/null", str(fifo)):
        with pytest.raises(argparse.ArgumentTypeError, match="not a regular file"):
            _args.out_file(bad)
        with pytest.raises(ValueError, match="not a regular file"):
            atomic_write(bad, b"x")
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"  # the link kept, its target written
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert _args.out_file("~/prof.json") == str(tmp_path / "home" / "prof.json")
    assert _args.out_dir("~/runs") == str(tmp_path / "home" / "runs")


def test_a_draw_killed_half_way_leaves_no_manifest_of_the_earlier_draw(tmp_path, monkeypatch):
    """Review (2026-12-05): a draw killed while overwriting an earlier draw's graph files left the earlier
    samples.json describing graphs that were no longer those.  Now the manifest goes first; the next draw removes
    every file of both (also the earlier draw's files the killed one had not reached)."""
    import torch
    from torch_geometric.data import Data

    import gnnkit.latent.io as lio
    two = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    three = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=3)
    out = tmp_path / "s"
    lio.write_samples([two] * 6, out, {"model": "old"})
    # the list, graph_000.txt, graph_000.pt: killed before graph_001
    monkeypatch.setattr(lio, "atomic_write", _killed_after(lio.atomic_write, 3))
    with pytest.raises(KeyboardInterrupt):
        lio.write_samples([three] * 6, out, {"model": "new"})
    monkeypatch.undo()
    assert not (out / "samples.json").exists()  # no manifest claims the mixed folder
    assert console_main(["verify", str(out)]) == 1  # and verify names the interrupted draw (review of the change)
    lio.write_samples([three] * 2, out, {"model": "next"})
    assert sorted(p.name for p in out.glob("graph_*")) == ["graph_000.pt", "graph_000.txt", "graph_001.pt",
                                                           "graph_001.txt"]
    assert console_main(["verify", str(out)]) == 0


def test_a_looping_link_is_refused_and_a_verified_write_through_a_link_keeps_its_side_file_with_the_target(tmp_path):
    from gnnkit._atomic import atomic_write, write_verified
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ValueError, match="loops"):
        atomic_write(tmp_path / "a", b"x")
    (tmp_path / "real").mkdir()
    (tmp_path / "link.pt").symlink_to(tmp_path / "real" / "ck.pt")
    write_verified(tmp_path / "link.pt", b"weights")
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["ck.pt", "ck.pt.sha256"]
    assert {f.status for f in verify(tmp_path / "real")} == {OK}
