"""Offline dataset loading: bundled data, $GNNKIT_DATA, clear errors, no prompts."""
import os
import shutil

import pytest

from gnnkit.data import BUNDLED_ROOT, DatasetNotFoundError, find_root, load_dataset
from tests.conftest import load_or_skip


def test_bundled_cora_and_mutag(monkeypatch, tmp_path):
    monkeypatch.delenv("GNNKIT_DATA", raising=False)
    monkeypatch.setenv("GNNKIT_CACHE", str(tmp_path))
    cora = load_dataset("cora")[0]
    assert (cora.num_nodes, cora.num_edges, int(cora.train_mask.sum())) == (2708, 10556, 140)
    mutag = load_dataset("MUTAG")
    assert len(mutag) == 188 and mutag.num_classes == 2
    assert find_root("Cora") == BUNDLED_ROOT


@pytest.mark.parametrize("name, size", [("PROTEINS", 1113), ("ENZYMES", 600)])
def test_tu_from_data_root(name, size):
    assert len(load_or_skip(name)) == size


def test_ogbl_ddi_split_loads_under_weights_only_torch():
    ds = load_or_skip("ogbl-ddi")
    split = ds.get_edge_split()
    assert ds[0].num_nodes == 4267
    assert split["train"]["edge"].shape == (1067911, 2)
    assert split["valid"]["edge_neg"].shape[1] == 2
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ  # the user's environment is untouched


def test_ogbg_molhiv():
    ds = load_or_skip("ogbg-molhiv")
    assert len(ds) == 41127
    assert sum(len(v) for v in ds.get_idx_split().values()) == 41127


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GNNKIT_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("PROTEINS")
    msg = str(e.value)
    assert "tu/PROTEINS" in msg and "PROTEINS_A.txt" in msg and "GNNKIT_DATA" in msg
    # an explicit root that lacks the data does not fall back to the bundled copy
    with pytest.raises(DatasetNotFoundError):
        load_dataset("Cora", root=str(tmp_path))


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("not-a-dataset")


def test_missing_release_file_never_prompts(tmp_path, monkeypatch):
    """Without RELEASE_v1.txt OGB would call input(); gnnkit reports the missing file instead."""
    src = os.environ.get("GNNKIT_DATA")
    if not src or not os.path.isdir(os.path.join(src, "ogb", "ogbl_ddi")):
        load_or_skip("ogbl-ddi")  # fails under CI (GNNKIT_DATA set) if the data is missing
    dst = tmp_path / "ogb" / "ogbl_ddi"
    shutil.copytree(os.path.join(src, "ogb", "ogbl_ddi"), dst, ignore=shutil.ignore_patterns("processed"))
    os.remove(dst / "RELEASE_v1.txt")
    with pytest.raises(DatasetNotFoundError, match="RELEASE_v1.txt"):
        load_dataset("ogbl-ddi", root=str(tmp_path))


def test_read_only_root_is_mirrored(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    shutil.copytree(BUNDLED_ROOT / "tu" / "MUTAG" / "raw", ro / "tu" / "MUTAG" / "raw")
    os.chmod(ro / "tu" / "MUTAG", 0o555)
    monkeypatch.setenv("GNNKIT_CACHE", str(tmp_path / "cache"))
    try:
        ds = load_dataset("MUTAG", root=str(ro))
        assert len(ds) == 188
        # also as root, whose os.access says yes to a 0555 folder (review: processed/ was written into it)
        assert not (ro / "tu" / "MUTAG" / "processed").exists()
        assert list((tmp_path / "cache").rglob("processed"))  # built in the cache's mirror instead
    finally:
        os.chmod(ro / "tu" / "MUTAG", 0o755)


def test_a_truncated_raw_file_is_refused_by_its_checksum(tmp_path):
    """Regression (issue 13.5): ind.cora.test.index cut to 500 lines was accepted (accuracy on half the test
    set); SHA256SUMS shipped with the data was never read."""
    import shutil

    from gnnkit.data import BUNDLED_ROOT, DatasetIntegrityError, load_dataset
    shutil.copytree(BUNDLED_ROOT / "planetoid" / "Cora" / "raw", tmp_path / "planetoid" / "Cora" / "raw")
    shutil.copy(BUNDLED_ROOT / "SHA256SUMS", tmp_path / "SHA256SUMS")
    assert load_dataset("Cora", root=str(tmp_path))[0].num_nodes == 2708  # intact: loads
    shutil.rmtree(tmp_path / "planetoid" / "Cora" / "processed")
    idx = tmp_path / "planetoid" / "Cora" / "raw" / "ind.cora.test.index"
    idx.write_text("\n".join(idx.read_text().splitlines()[:500]) + "\n")
    with pytest.raises(DatasetIntegrityError, match=r"ind\.cora\.test\.index: its SHA-256 differs"):
        load_dataset("Cora", root=str(tmp_path))


def test_an_unreadable_processed_file_is_named(tmp_path):
    """Regression (issue 13.5): truncated processed/ files gave raw tracebacks."""
    import shutil

    from gnnkit.data import BUNDLED_ROOT, DatasetIntegrityError, load_dataset
    shutil.copytree(BUNDLED_ROOT / "planetoid" / "Cora" / "raw", tmp_path / "planetoid" / "Cora" / "raw")
    load_dataset("Cora", root=str(tmp_path))
    for f in (tmp_path / "planetoid" / "Cora" / "processed").glob("data.pt"):
        f.write_bytes(f.read_bytes()[:64])
    with pytest.raises(DatasetIntegrityError, match="processed"):
        load_dataset("Cora", root=str(tmp_path))


def _halve(path):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:len(lines) // 2]) + "\n")


def test_a_truncated_cora_index_is_refused_without_a_checksum_file(tmp_path):
    """A user's own copy (no SHA256SUMS): a test.index with fewer ids than tx has rows is refused."""
    from gnnkit.data import DatasetIntegrityError
    shutil.copytree(BUNDLED_ROOT / "planetoid" / "Cora" / "raw", tmp_path / "planetoid" / "Cora" / "raw")
    _halve(tmp_path / "planetoid" / "Cora" / "raw" / "ind.cora.test.index")
    with pytest.raises(DatasetIntegrityError, match=r"ind\.cora\.test\.index: 500 test ids for 1000"):
        load_dataset("Cora", root=str(tmp_path))


@pytest.mark.parametrize("part,key", [("graph_labels", "y has 94 rows but the graphs need 188"),
                                      ("node_labels", "x has 1685 rows but the graphs need 3371")])
def test_a_truncated_tu_file_is_refused_without_a_checksum_file(tmp_path, part, key):
    """PyG's TUDataset loads MUTAG with half its graph labels (or node labels) missing and hands out graphs
    without a label; gnnkit checks every stored attribute against the slices."""
    from gnnkit.data import DatasetIntegrityError
    shutil.copytree(BUNDLED_ROOT / "tu" / "MUTAG" / "raw", tmp_path / "tu" / "MUTAG" / "raw")
    _halve(tmp_path / "tu" / "MUTAG" / "raw" / f"MUTAG_{part}.txt")
    with pytest.raises(DatasetIntegrityError, match=key):
        load_dataset("MUTAG", root=str(tmp_path))


def test_processed_files_built_from_damaged_raw_files_are_not_reused(tmp_path):
    """Review finding: PyG processed a truncated Cora test.index before gnnkit refused it; after the file was
    restored, as the error asked, the stale processed copy was reused: 500 test nodes, silently."""
    from gnnkit.data import DatasetIntegrityError
    raw = tmp_path / "planetoid" / "Cora" / "raw"
    shutil.copytree(BUNDLED_ROOT / "planetoid" / "Cora" / "raw", raw)
    good = (raw / "ind.cora.test.index").read_text()
    _halve(raw / "ind.cora.test.index")
    with pytest.raises(DatasetIntegrityError, match="processed copy built from them .* was removed"):
        load_dataset("Cora", root=str(tmp_path))
    (raw / "ind.cora.test.index").write_text(good)
    assert int(load_dataset("Cora", root=str(tmp_path))[0].test_mask.sum()) == 1000
    # raw files replaced after a good load: the processed copy is rebuilt from them
    data_pt = tmp_path / "planetoid" / "Cora" / "processed" / "data.pt"
    data_pt.write_bytes(b"stale")
    y = raw / "ind.cora.y"
    y.write_bytes(y.read_bytes())  # a new modification time
    assert int(load_dataset("Cora", root=str(tmp_path))[0].test_mask.sum()) == 1000


def test_a_data_root_without_a_bundled_dataset_names_the_bundled_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("GNNKIT_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="A bundled copy of Cora exists"):
        load_dataset("Cora")


def test_a_processed_file_changed_after_its_build_is_refused_then_rebuilt(tmp_path):
    """Review (session 14): one byte of Cora's processed test_mask, zeroed, loaded silently (999 test nodes): torch's
    zip files carry no checksum a load checks. The stamp now keeps the processed files' SHA-256."""
    import zipfile

    from gnnkit.data import DatasetIntegrityError
    shutil.copytree(BUNDLED_ROOT / "planetoid" / "Cora" / "raw", tmp_path / "planetoid" / "Cora" / "raw")
    assert int(load_dataset("Cora", root=str(tmp_path))[0].test_mask.sum()) == 1000
    path = tmp_path / "planetoid" / "Cora" / "processed" / "data.pt"
    with zipfile.ZipFile(path) as z:  # the stored test_mask: the bool storage of 2708 bytes with 1000 ones
        info = [i for i in z.infolist() if i.file_size == 2708 and z.read(i).count(1) == 1000][0]
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little") \
        + int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[start + bytes(raw[start:start + 2708]).index(1)] = 0
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetIntegrityError, match=r"processed files \['data.pt'\].*changed since they were built"):
        load_dataset("Cora", root=str(tmp_path))
    assert int(load_dataset("Cora", root=str(tmp_path))[0].test_mask.sum()) == 1000  # rebuilt from the raw files
