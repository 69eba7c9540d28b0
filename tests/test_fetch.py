"""`mealrec data fetch` against a local HTTP server on 127.0.0.1 (no outside network)."""
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from mealrec.cli import main
from mealrec.data import microlens
from mealrec.utils import MealRecError

from .conftest import real_data_dir


@pytest.fixture
def served(tmp_path):
    """Serve a folder holding the two files: the shared real copies when present, else small stand-ins."""
    src = tmp_path / "srv"
    src.mkdir()
    real = real_data_dir()
    names = [microlens.PAIRS, microlens.TITLES]
    if real is not None:
        for n in names:
            (src / n).write_bytes((real / "microlens-50k" / n).read_bytes())
        hashes = dict(microlens.OFFICIAL_SHA256)
    else:
        (src / microlens.PAIRS).write_text("1\t1 2 3 4\n")
        (src / microlens.TITLES).write_text("item,title\n1,a\n")
        hashes = {n: hashlib.sha256((src / n).read_bytes()).hexdigest() for n in names}
    handler = functools.partial(_QuietHandler, directory=str(src))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", src, hashes
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_fetch_downloads_and_verifies(served, tmp_path):
    url, src, hashes = served
    dest = tmp_path / "data"
    folder = microlens.fetch(dest, base_url=url, files=hashes, progress=False)
    for n, h in hashes.items():
        assert hashlib.sha256((folder / n).read_bytes()).hexdigest() == h
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    # a second fetch keeps the verified files: nothing is downloaded or rewritten
    stamps = {n: (folder / n).stat().st_mtime_ns for n in hashes}
    again = microlens.fetch(dest, base_url="http://127.0.0.1:9/unreachable", files=hashes, progress=False)
    assert again == folder and {n: (folder / n).stat().st_mtime_ns for n in hashes} == stamps


def test_fetch_rejects_corrupted_file_and_removes_it(served, tmp_path):
    url, src, hashes = served
    p = src / microlens.TITLES
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    dest = tmp_path / "data"
    with pytest.raises(MealRecError, match="SHA-256 .* expected .* removed"):
        microlens.fetch(dest, base_url=url, files=hashes, progress=False)
    folder = dest / "microlens-50k"
    assert not (folder / microlens.TITLES).exists()
    assert not [q for q in folder.iterdir() if q.name.endswith(".tmp")]


def test_fetch_missing_file_is_an_error(served, tmp_path):
    url, src, hashes = served
    (src / microlens.PAIRS).unlink()
    with pytest.raises(MealRecError, match="could not download"):
        microlens.fetch(tmp_path / "d", base_url=url, files=hashes, progress=False)
    assert not (tmp_path / "d" / "microlens-50k" / microlens.PAIRS).exists()


def test_cli_fetch_uses_official_hashes(served, tmp_path, capsys):
    url, src, hashes = served
    if hashes != microlens.OFFICIAL_SHA256:
        pytest.skip("needs the real MicroLens-50K copies to match the official hashes")
    rc = main(["data", "fetch", "microlens-50k", "--data-dir", str(tmp_path / "d"), "--url", url])
    assert rc == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "d" / "microlens-50k"
