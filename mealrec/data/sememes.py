"""Recommendation sememes: the item-sememe matrix of SeeDRec (Ma et al., IJCAI 2024).

A *sememe* is a minimal interest unit; each item is a set of sememes, and
``D^S in {0,1}^{|I| x q}`` (paper Sec. 3.3, "Diffusion on sememe") says which. Three
sources, chosen by ``source``:

* ``hashtag`` (MicroLens): the ``#`` tags of the real titles. A title is split on
  ``#``; the text before the first ``#`` is the body, each later piece is one tag
  (lower-cased, surrounding punctuation stripped, inner whitespace collapsed, so
  ``"# Funny  video!"`` and ``"#funny video"`` are the same tag). Empty pieces
  (``"##"``, a trailing ``#``) are dropped; a tag repeated in one title counts once.
* ``word`` (the paper's word-as-sememe setting, Sec. 4.1: "tokenization, lemmatization,
  and filtering on item titles with the NLTK library"): the title (``#`` signs removed) is
  lower-cased and split into alphabetic tokens; English stop words and tokens shorter
  than ``min_word_len`` are dropped; each token is lemmatised by a small rule-based
  noun/verb suffix lemmatiser (:func:`lemmatise`); NLTK and its WordNet data are not
  available offline here, so this replaces NLTK's ``WordNetLemmatizer``.
* ``topic`` (synthetic datasets): the planted topic of each item (one sememe per item),
  recovered by re-running the seeded generator with the dataset's ``generator_params``.

``auto`` picks ``topic`` for synthetic datasets and ``hashtag`` for real ones.

Filtering (``hashtag`` and ``word``): a sememe is kept if it occurs in at least
``min_items`` items and in at most ``max_item_frac`` of them. The matrix depends on item
content only (titles / planted topics), never on interactions, so it cannot leak a
user's validation or test target. Row 0 (padding item) is empty.

The matrix is built once per (dataset content, source, filters) and cached as
``$MEALREC_CACHE/sememes/<source>-<hash>.npz`` (CSR arrays plus the vocabulary).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from ..utils import MealRecError, cache_file, save_npz_atomic, sha256_arrays

SOURCES = ("auto", "hashtag", "word", "topic")

#: filters per source when none are given: (min_items, max_item_frac)
DEFAULT_FILTERS = {"hashtag": (2, 1.0), "word": (5, 0.1), "topic": (1, 1.0)}

# A compact English stop-word list (the usual NLTK ``stopwords.words("english")`` entries
# plus a few title fillers).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn did didn do does doesn
    doing don down during each few for from further had hadn has hasn have haven having he
    her here hers herself him himself his how i if in into is isn it its itself just let ll
    me more most mustn my myself no nor not now of off on once only or other ought our ours
    ourselves out over own re same shan she should shouldn so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    ve very was wasn we were weren what when where which while who whom why will with won
    would wouldn you your yours yourself yourselves also get got one two really even still
    s t d m o y""".split()
)

_TOKEN = re.compile(r"[a-z]+")
_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


# --------------------------------------------------------------------------- tokens
def hashtags(title: str) -> list[str]:
    """The distinct ``#`` tags of a title, in order of first appearance."""
    if not title or "#" not in title:
        return []
    out: list[str] = []
    for piece in title.split("#")[1:]:
        tag = _EDGE_PUNCT.sub("", _SPACE.sub(" ", piece.strip().lower()))
        if tag and tag not in out:
            out.append(tag)
    return out


_IRREGULAR = {"children": "child", "men": "man", "women": "woman", "people": "person", "feet": "foot",
              "teeth": "tooth", "mice": "mouse", "geese": "goose", "was": "be", "were": "be", "is": "be",
              "are": "be", "has": "have", "had": "have", "did": "do", "does": "do", "made": "make",
              "went": "go", "gone": "go", "ate": "eat", "eaten": "eat", "took": "take", "taken": "take"}


def lemmatise(word: str) -> str:
    """Rule-based lemma of a lower-case English token (plural nouns and -ing/-ed verbs).

    Conservative: a rule applies only when the remaining stem keeps >= 3 letters, so short
    words are left alone. ``"videos" -> "video"``, ``"stories" -> "story"``,
    ``"boxes" -> "box"``, ``"cooking" -> "cook"``, ``"played" -> "play"``."""
    w = word
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes", "zes")) and len(w) > 5:
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        return w[:-1]
    for suf in ("ing", "ed"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            stem = w[: -len(suf)]
            if len(stem) >= 4 and stem[-1] == stem[-2] and stem[-1] not in "lsz":  # running -> run
                stem = stem[:-1]
            return stem
    return w


def title_words(title: str, min_word_len: int = 3, stopwords: Iterable[str] = STOPWORDS) -> list[str]:
    """Distinct lemmatised content words of a title (tokenise, stop-word filter, lemmatise)."""
    if not title:
        return []
    stop = stopwords if isinstance(stopwords, (set, frozenset)) else set(stopwords)
    out: list[str] = []
    for tok in _TOKEN.findall(title.replace("#", " ").lower()):
        if len(tok) < min_word_len or tok in stop:
            continue
        lem = lemmatise(tok)
        if len(lem) >= min_word_len and lem not in stop and lem not in out:
            out.append(lem)
    return out


# --------------------------------------------------------------------------- matrix
@dataclass
class SememeMatrix:
    """Binary item-sememe matrix in CSR form: item ``i``'s sememes are
    ``indices[indptr[i]:indptr[i+1]]`` (0-based columns into ``vocab``); row 0 = padding."""

    source: str
    vocab: list[str]
    indptr: np.ndarray  # (n_items + 1,) int64
    indices: np.ndarray  # (nnz,) int64

    @property
    def n_items(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_sememes(self) -> int:
        return len(self.vocab)

    def item_sememes(self, item: int) -> list[str]:
        return [self.vocab[j] for j in self.indices[self.indptr[item] : self.indptr[item + 1]]]

    def dense(self) -> torch.Tensor:
        """``(n_items, q)`` float32 0/1 matrix ``D^S``."""
        m = torch.zeros(self.n_items, self.n_sememes)
        rows = np.repeat(np.arange(self.n_items), np.diff(self.indptr))
        m[torch.from_numpy(rows), torch.from_numpy(self.indices)] = 1.0
        return m

    def stats(self) -> dict:
        per_item = np.diff(self.indptr)[1:]
        return {
            "source": self.source,
            "items": int(len(per_item)),
            "sememes": self.n_sememes,
            "items_without_sememe": int((per_item == 0).sum()),
            "avg_sememes_per_item": float(per_item.mean()) if len(per_item) else 0.0,
        }


def build_matrix(
    token_lists: Sequence[Sequence[str]], source: str, min_items: int = 1, max_item_frac: float = 1.0
) -> SememeMatrix:
    """Matrix from per-item token lists (``token_lists[0]`` is the padding item's, ignored).

    Keeps the tokens present in ``>= min_items`` items and ``<= max_item_frac`` of the real
    items; the vocabulary is sorted, so the column order does not depend on item order."""
    n_real = max(len(token_lists) - 1, 1)
    count: dict[str, int] = {}
    for toks in token_lists[1:]:
        for t in set(toks):
            count[t] = count.get(t, 0) + 1
    cap = max_item_frac * n_real
    vocab = sorted(t for t, c in count.items() if c >= min_items and c <= cap)
    col = {t: j for j, t in enumerate(vocab)}
    indptr = [0, 0]  # padding row empty
    indices: list[int] = []
    for toks in token_lists[1:]:
        cols = sorted({col[t] for t in toks if t in col})
        indices.extend(cols)
        indptr.append(len(indices))
    return SememeMatrix(source, vocab, np.asarray(indptr, np.int64), np.asarray(indices, np.int64))


def hashtag_matrix(titles: Sequence[str], min_items: int = 1, max_item_frac: float = 1.0) -> SememeMatrix:
    """``titles[i]`` = title of item ``i`` (entry 0 = padding)."""
    return build_matrix([hashtags(t) for t in titles], "hashtag", min_items, max_item_frac)


def word_matrix(
    titles: Sequence[str], min_items: int = 5, max_item_frac: float = 0.1, min_word_len: int = 3
) -> SememeMatrix:
    return build_matrix([title_words(t, min_word_len) for t in titles], "word", min_items, max_item_frac)


def topic_matrix(item_topic: np.ndarray) -> SememeMatrix:
    """``item_topic[i]`` = topic of item ``i`` (entry 0 = padding, ignored); one sememe per item."""
    topics = np.asarray(item_topic, dtype=np.int64)
    return build_matrix([[]] + [[f"topic{int(c)}"] for c in topics[1:]], "topic", 1, 1.0)


# --------------------------------------------------------------------------- datasets
def titles_by_item(dataset) -> list[str]:
    """Titles indexed by item id with ``""`` for the padding item 0 (``dataset.titles`` holds
    one entry per real item; a list of ``n_items`` entries is taken as already padded)."""
    titles = list(dataset.titles or [])
    if len(titles) == dataset.n_items - 1:
        return [""] + [t or "" for t in titles]
    if len(titles) == dataset.n_items:
        return [""] + [t or "" for t in titles[1:]]
    raise MealRecError(f"{dataset.name}: {len(titles)} titles for {dataset.n_items - 1} items")


def planted_topics(dataset) -> np.ndarray:
    """``(n_items,)`` planted topic of every item of a synthetic dataset (-1 for padding).

    The generator is seeded, so re-running it with the dataset's ``generator_params`` gives
    the same world; ``dataset.item_ids`` maps item ids to the generator's ids."""
    from . import synthetic

    params = (dataset.metadata or {}).get("generator_params")
    if params is None or not hasattr(dataset, "item_ids"):
        raise MealRecError(f"{dataset.name}: planted topics need a synthetic dataset (generator_params, item_ids)")
    world = synthetic.generate(synthetic.SyntheticParams(**params))
    item_ids = np.asarray(dataset.item_ids, dtype=np.int64)
    titles = titles_by_item(dataset)
    if world.titles[int(item_ids[0]) - 1] != titles[1]:  # guard against a changed generator
        raise MealRecError(f"{dataset.name}: regenerated world does not match the dataset")
    return np.concatenate([[-1], world.item_topic[item_ids - 1]]).astype(np.int64)


def resolve_source(dataset, source: str = "auto") -> str:
    if source not in SOURCES:
        raise MealRecError(f"sememe source must be one of {', '.join(SOURCES)}; got {source!r}")
    if source != "auto":
        return source
    synthetic = "generator_params" in (dataset.metadata or {})
    return "topic" if synthetic else "hashtag"


def sememes_for(
    dataset,
    source: str = "auto",
    min_items: int | None = None,
    max_item_frac: float | None = None,
    use_cache: bool = True,
) -> SememeMatrix:
    """The item-sememe matrix of ``dataset``, built once and cached on disk."""
    src = resolve_source(dataset, source)
    d_min, d_frac = DEFAULT_FILTERS[src]
    min_items = d_min if min_items is None else int(min_items)
    max_item_frac = d_frac if max_item_frac is None else float(max_item_frac)
    if src == "topic":
        content = planted_topics(dataset)
        key = sha256_arrays(content, extra="topic")
    else:
        titles = titles_by_item(dataset)
        content = None
        key = sha256_arrays(np.frombuffer("\x1f".join(titles).encode("utf-8"), dtype=np.uint8),
                            extra=f"{src}|{min_items}|{max_item_frac}|v1")
    path = cache_file("sememes", f"{src}-{key[:32]}.npz")
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return SememeMatrix(
                src, [str(v) for v in z["vocab"]], z["indptr"].astype(np.int64), z["indices"].astype(np.int64)
            )
    if src == "topic":
        mat = topic_matrix(content)
    elif src == "hashtag":
        mat = hashtag_matrix(titles, min_items, max_item_frac)
    else:
        mat = word_matrix(titles, min_items, max_item_frac)
    if mat.n_items != dataset.n_items:
        raise MealRecError(f"internal: sememe matrix has {mat.n_items} rows for {dataset.n_items} items")
    if use_cache:
        save_npz_atomic(path, vocab=np.asarray(mat.vocab, dtype=str), indptr=mat.indptr, indices=mat.indices)
    return mat
