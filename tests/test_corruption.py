"""Stored results that cannot be read are reported and moved aside; MicroLens files with a BOM load."""
from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from mealrec.data import get_dataset, microlens
from mealrec.reproduce import RunStore
from mealrec.integrity import read_result as load_result
from mealrec.integrity import CorruptFileError, diagnose_unreadable
from mealrec.utils import MealRecError

CONFLICT = '{\n<<<<<<< HEAD\n  "test": {"ndcg@10": 0.1}\n=======\n  "test": {"ndcg@10": 0.2}\n>>>>>>> other\n}\n'
LFS = ("version https://git-lfs.github.com/spec/v1\n"
       "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")
R_JSON = r"not valid JSON \(truncated or damaged\?\): .*line \d+ column \d+"
R_NPZ = r"not a readable \.npz archive"
R_CONFLICT = r"git merge conflict markers \(resolve the conflict or delete the file\)"
R_LFS = r"a Git LFS pointer, not the file \(run `git lfs pull`\)"


def _truncate(b: bytes) -> bytes:
    return b[: len(b) // 2]


#: name -> (which file is damaged, how, the reason expected)
DAMAGE = {
    "truncated-json": (".json", _truncate, R_JSON),
    "damaged-npz": (".npz", _truncate, R_NPZ),
    "conflict-json": (".json", lambda b: CONFLICT.encode(), R_CONFLICT),
    "lfs-json": (".json", lambda b: LFS.encode(), R_LFS),
    "lfs-npz": (".npz", lambda b: LFS.encode(), R_LFS),
    "empty-json": (".json", lambda b: b"", r"empty file"),
}


def _good_result(folder: Path) -> Path:
    """A result JSON and its per-user NPZ, as :func:`save_result` lays them out."""
    path = folder / "seed1-abc.json"
    path.write_text(json.dumps({"store_key": "abc", "test": {"ndcg@10": 0.25}}, indent=2) + "\n", encoding="utf-8")
    np.savez_compressed(path.with_suffix(".npz"), users=np.arange(50), **{"ndcg@10": np.linspace(0, 1, 50)})
    return path


def _damage(path: Path, case: str) -> Path:
    suffix, how, _ = DAMAGE[case]
    bad = path.with_suffix(suffix)
    bad.write_bytes(how(bad.read_bytes()))
    return bad


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_load_result_names_the_file_and_the_reason(tmp_path, case):
    path = _good_result(tmp_path)
    assert load_result(path)["per_user_test"]["ndcg@10"].shape == (50,)
    bad = _damage(path, case)
    with pytest.raises(CorruptFileError) as info:
        load_result(path)
    err = info.value
    assert isinstance(err, MealRecError) and err.path == bad
    assert str(bad) in str(err)
    assert re.search(DAMAGE[case][2], err.reason) and err.reason in str(err)
    again = pickle.loads(pickle.dumps(err))  # crosses process boundaries intact
    assert (again.path, again.reason, str(again)) == (err.path, err.reason, str(err))


def test_npz_with_a_damaged_member_and_a_non_object_json(tmp_path):
    path = _good_result(tmp_path)
    npz = path.with_suffix(".npz")
    raw = bytearray(npz.read_bytes())
    mid = len(raw) // 3
    raw[mid:mid + 16] = bytes(16)  # inside the compressed member: CRC / zlib / header failure
    npz.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=R_NPZ):
        load_result(path)
    npz.unlink()
    path.write_text("[1, 2]\n")
    with pytest.raises(CorruptFileError, match=r"JSON holds a list"):
        load_result(path)
    path.unlink()
    with pytest.raises(FileNotFoundError):  # a missing result is not a corrupt one
        load_result(path)


def test_diagnose_unreadable_without_an_error():
    assert diagnose_unreadable("x.json", '{"a": 1}') is None
    assert diagnose_unreadable("x.json", '{"a": ').startswith("not valid JSON (truncated or damaged?): ")
    assert diagnose_unreadable("x.json", "") == "empty file (0 bytes)"
    assert diagnose_unreadable("x.json", CONFLICT.encode()) == R_CONFLICT.replace("\\", "")
    assert diagnose_unreadable("x.npz", LFS) == "a Git LFS pointer, not the file (run `git lfs pull`)"
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    assert diagnose_unreadable("x.npz", buf.getvalue()) is None
    assert diagnose_unreadable("x.npz", buf.getvalue()[:40]).startswith("not a readable .npz archive: ")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny stored run, and a copy of its files to restore between cases."""
    store = RunStore(tmp_path_factory.mktemp("runs"), progress=False, threads=1)
    res = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    path = Path(res["result_path"])
    saved = {s: path.with_suffix(s).read_bytes() for s in (".json", ".npz")}
    return store, path, saved, res


def _restore(path: Path, saved: dict) -> None:
    for p in path.parent.iterdir():
        if p.name.endswith(".corrupt"):
            p.unlink()
    for s, b in saved.items():
        path.with_suffix(s).write_bytes(b)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_store_moves_an_unreadable_result_aside_and_trains_again(trained, case, monkeypatch, capsys):
    import mealrec.reproduce.store as S

    store, path, saved, first = trained
    _restore(path, saved)
    _damage(path, case)
    # read_stored: None, both files renamed to <name>.corrupt, a warning naming the file and reason
    assert store.read_stored(path) is None
    err = capsys.readouterr().err
    assert "warning" in err and str(path.with_suffix(DAMAGE[case][0])) in err
    assert re.search(DAMAGE[case][2], err)
    for s in (".json", ".npz"):
        assert not path.with_suffix(s).exists() and path.with_name(path.with_suffix(s).name + ".corrupt").exists()
    assert store.read_stored(path) is None and capsys.readouterr().err == ""  # now simply missing
    # run(): the damaged run is not stored, so it is trained (here: its saved files put back)
    _restore(path, saved)
    _damage(path, case)
    calls = []

    def fake_train(run, dataset, out, progress):
        calls.append(out)
        for s, b in saved.items():
            Path(out).with_suffix(s).write_bytes(b)

    monkeypatch.setattr(S, "train", fake_train)
    res = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert calls == [path] and res["test"] == first["test"] and res["store_key"] == first["store_key"]
    assert "moved aside" in capsys.readouterr().err
    # a second .corrupt replaces the first
    _damage(path, case)
    assert store.read_stored(path) is None
    assert path.with_name(path.with_suffix(DAMAGE[case][0]).name + ".corrupt").read_bytes() != saved[DAMAGE[case][0]]


def test_store_retrains_a_truncated_result_for_real(trained):
    store, path, saved, first = trained
    _restore(path, saved)
    _damage(path, "truncated-json")
    res = store.run("sasrec", "synthetic-tiny", seed=1, epochs=1)
    assert res["test"] == first["test"] and json.loads(path.read_text())["store_key"] == first["store_key"]
    assert path.with_name(path.name + ".corrupt").exists()
    np.testing.assert_array_equal(res["per_user_test"]["ndcg@10"], first["per_user_test"]["ndcg@10"])


# --------------------------------------------------------------------------- MicroLens with a byte-order mark
PAIRS = "".join(f"{u}\t" + " ".join(str(i) for i in (1, 2, 3, 4, 5)) + "\n" for u in range(1, 7))
TITLES = "item,title\n" + "".join(f'{i},"título {i}, with comma"\n' for i in range(1, 6))


def _microlens_dir(root: Path, pairs_bom: bool, titles_bom: bool) -> Path:
    folder = root / microlens.SUBDIR
    folder.mkdir(parents=True)
    (folder / microlens.PAIRS).write_text(PAIRS, encoding="utf-8-sig" if pairs_bom else "utf-8")
    (folder / microlens.TITLES).write_text(TITLES, encoding="utf-8-sig" if titles_bom else "utf-8")
    return root


@pytest.mark.parametrize("pairs_bom,titles_bom", [(True, False), (False, True), (True, True)])
def test_files_with_a_byte_order_mark_load_as_without(tmp_path, pairs_bom, titles_bom):
    plain = _microlens_dir(tmp_path / "plain", False, False)
    bom = _microlens_dir(tmp_path / "bom", pairs_bom, titles_bom)
    assert (bom / microlens.SUBDIR / microlens.TITLES).read_bytes().startswith(b"\xef\xbb\xbf") == titles_bom
    for name in (microlens.PAIRS, microlens.TITLES):
        read = microlens.read_pairs if name == microlens.PAIRS else microlens.read_titles
        assert read(bom / microlens.SUBDIR / name) == read(plain / microlens.SUBDIR / name)
    a, b = (get_dataset("microlens-big", data_dir=d, text_encoder="hashed", progress=False) for d in (plain, bom))
    assert a.data_hash == b.data_hash and a.titles == b.titles and a.titles[0] == "título 1, with comma"
    assert [list(s) for s in a.seqs] == [list(s) for s in b.seqs]
    np.testing.assert_array_equal(a.features().text.numpy(), b.features().text.numpy())


def test_result_json_with_a_byte_order_mark_reads(tmp_path):
    path = _good_result(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_result(path)["test"] == {"ndcg@10": 0.25}
