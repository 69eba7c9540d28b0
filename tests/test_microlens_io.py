"""Bad input gets a clear error naming the file, line or parameter."""
import numpy as np
import pytest

from mealrec.data import get_dataset, microlens
from mealrec.data.features import load_feature_file
from mealrec.utils import MealRecError

GOOD_PAIRS = "".join(f"{u}\t" + " ".join(str(i) for i in (1, 2, 3, 4, 5)) + "\n" for u in range(1, 7))
GOOD_TITLES = "item,title\n" + "".join(f'{i},"title of video {i}, with comma"\n' for i in range(1, 6))


def test_good_files_load(fake_microlens):
    root = fake_microlens(GOOD_PAIRS, GOOD_TITLES)
    ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
    assert ds.stats()["users"] == 6 and ds.stats()["items"] == 5
    assert ds.titles[0] == "title of video 1, with comma"
    assert ds.metadata["visual_features"].startswith("synthetic placeholder")
    assert ds.metadata["interactions"] == "real"


def test_malformed_line_names_file_and_line(fake_microlens):
    root = fake_microlens(GOOD_PAIRS + "7 1 2 3\n", GOOD_TITLES)
    with pytest.raises(MealRecError, match=r"MicroLens-50k_pairs\.tsv:7: malformed"):
        get_dataset("microlens-big", data_dir=root)


def test_non_integer_ids(fake_microlens):
    root = fake_microlens("1\t1 2 x3 4\n", GOOD_TITLES)
    with pytest.raises(MealRecError, match=r"pairs\.tsv:1: item id 'x3' is not an integer"):
        get_dataset("microlens-big", data_dir=root)
    root = fake_microlens("u1\t1 2 3 4\n", GOOD_TITLES)
    with pytest.raises(MealRecError, match=r"pairs\.tsv:1: user id 'u1' is not an integer"):
        get_dataset("microlens-big", data_dir=root)
    root = fake_microlens(GOOD_PAIRS, "item,title\nabc,hello\n")
    with pytest.raises(MealRecError, match=r"titles\.csv:2: item id 'abc'"):
        get_dataset("microlens-big", data_dir=root)


def test_duplicated_user_line(fake_microlens):
    root = fake_microlens(GOOD_PAIRS + "3\t1 2 3 4\n", GOOD_TITLES)
    with pytest.raises(MealRecError, match=r"pairs\.tsv:7: user 3 already appeared on line 3"):
        get_dataset("microlens-big", data_dir=root)


def test_missing_titles_file(fake_microlens):
    root = fake_microlens(GOOD_PAIRS, titles=None)
    with pytest.raises(MealRecError, match=r"titles file not found: .*MicroLens-50k_titles\.csv.*mealrec data fetch"):
        get_dataset("microlens-big", data_dir=root)


def test_item_without_title_gets_empty_title(fake_microlens):
    titles = "item,title\n1,one\n2,\n3,three\n4,four\n"  # 2 is empty, 5 is absent
    root = fake_microlens(GOOD_PAIRS, titles)
    with pytest.warns(UserWarning, match="2 item"):
        ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
    assert ds.metadata["items_without_title"] == 2
    assert ds.titles[1] == "" and ds.titles[4] == ""
    text = ds.features().text
    assert float(text[2].abs().sum()) == 0.0 and float(text[1].abs().sum()) > 0


def test_missing_data_directory_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.delenv("MEALREC_DATA", raising=False)
    with pytest.raises(MealRecError, match="mealrec data fetch microlens-50k"):
        get_dataset("microlens-small", data_dir=tmp_path / "nowhere")
    with pytest.raises(MealRecError, match="MEALREC_DATA"):
        get_dataset("microlens-small")
    with pytest.raises(MealRecError, match="mealrec data fetch"):
        get_dataset("microlens-small", data_dir=tmp_path)  # exists, but no files


def test_feature_file_of_wrong_shape(tmp_path):
    p = tmp_path / "frames.npy"
    np.save(p, np.zeros((10, 4, 768), np.float16))
    with pytest.raises(MealRecError, match=r"frames\.npy has shape \(10, 4, 768\), expected \(10, 5, 768\)"):
        load_feature_file(p, (10, 5, 768))
    np.save(p, np.full((10, 5, 768), np.nan, np.float32))
    with pytest.raises(MealRecError, match="NaN"):
        load_feature_file(p, (10, 5, 768))


def test_corrupted_cache_entry_is_reported(fake_microlens, tmp_path, monkeypatch):
    monkeypatch.setenv("MEALREC_CACHE", str(tmp_path / "c"))
    root = fake_microlens(GOOD_PAIRS, GOOD_TITLES)
    ds = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
    ds.features()
    cached = sorted((tmp_path / "c" / "features").glob("text-hashed-*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.zeros((3, 384), np.float32))
    ds2 = get_dataset("microlens-big", data_dir=root, text_encoder="hashed", progress=False)
    with pytest.raises(MealRecError, match="delete it to rebuild"):
        ds2.features()


def test_titles_header_is_checked(fake_microlens):
    root = fake_microlens(GOOD_PAIRS, "id,name\n1,x\n")
    with pytest.raises(MealRecError, match=r"titles\.csv:1: expected header"):
        get_dataset("microlens-big", data_dir=root)
