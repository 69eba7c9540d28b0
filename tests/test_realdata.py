"""Real MicroLens-50K checks; skipped when the files are absent."""
import numpy as np
import pytest

from mealrec.cli import main
from mealrec.data import get_dataset

pytestmark = pytest.mark.realdata


def test_microlens_big_counts(data_dir):
    ds = get_dataset("microlens-big", data_dir=data_dir, progress=False)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"]) == (49744, 15647, 351798)
    assert ds.metadata["items_without_title"] == 0
    assert ds.metadata["visual_features"].startswith("synthetic placeholder")
    assert len(ds.train) == 351798 - 3 * 49744
    assert len(ds.test) == len(ds.valid) == 49744
    # every test target is the user's last item and every valid target the one before; the
    # test history ends at the valid target (right-aligned or left-aligned, as the split stores it)
    assert int(ds.test.item_seq_len.max()) == 10
    users = ds.test.user.numpy()
    assert (ds.test.target.numpy() == np.array([ds.seqs[u][-1] for u in users])).all()
    vu = ds.valid.user.numpy()
    assert (ds.valid.target.numpy() == np.array([ds.seqs[u][-2] for u in vu])).all()
    seq, lens = ds.test.item_seq.numpy(), ds.test.item_seq_len.numpy()
    for i in range(0, len(users), 997):  # a spread of users: the history is the 10 items before the target
        s = ds.seqs[users[i]]
        hist = seq[i][seq[i] > 0]
        assert len(hist) == lens[i] and list(hist) == list(s[:-1][-lens[i]:])


def test_microlens_small_counts(data_dir):
    s = get_dataset("microlens-small", data_dir=data_dir, progress=False).stats()
    assert (s["users"], s["items"], s["interactions"]) == (10017, 7125, 63898)


def test_microlens_order_is_file_order(data_dir):
    ds = get_dataset("microlens-small", data_dir=data_dir, progress=False)
    users = list(ds.user_ids)
    checked = 0
    for line in (data_dir / "microlens-50k" / "MicroLens-50k_pairs.tsv").read_text().splitlines()[:200]:
        uid, rest = line.split("\t")
        if int(uid) not in users:
            continue
        items = [int(x) for x in rest.split()]
        kept = [int(ds.item_ids[j - 1]) for j in ds.seqs[users.index(int(uid))]]
        assert kept == [i for i in items if i in set(kept)]
        checked += 1
    assert checked > 20


def test_stats_cli_real(data_dir, capsys):
    assert main(["data", "stats", "microlens-big", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "49,744" in out and "15,647" in out and "351,798" in out
