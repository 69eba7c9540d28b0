"""One training run as a page asks for it (:class:`RunRequest`), and the claim that keeps two
processes from training the same run. Each artefact module builds its pages' requests from
these; :mod:`.plan` lists, costs and trains them."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .profiles import Profile, stopped_on_plateau
from .store import RunStore, _tag


@dataclass(frozen=True)
class RunRequest:
    """One training run as the run store keys it (see :meth:`RunStore.run`)."""

    model: str
    dataset: str
    seed: int
    epochs: int
    patience: int
    overrides: tuple[tuple[str, Any], ...] = ()
    visual_noise: float = 0.0
    isolate: bool = False  # trained in its own process (Table 3's timing runs)
    plateau_patience: int | None = None  # see Profile.plateau_patience

    def kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "epochs": self.epochs, "patience": self.patience, "overrides": dict(self.overrides),
                "visual_noise": self.visual_noise, "isolate": self.isolate}

    def run(self, store: RunStore, claimed: bool = False) -> dict:
        """The stored result, trained first when it is missing; when it stopped on an early
        plateau and the profile says so, the result of the retry with the longer patience.
        A missing run is claimed first (:func:`claim`), so that two processes never train the
        same run: one trains, the other waits and reads it back. ``claimed``: the caller holds it."""
        if not claimed and getattr(store, "train", True):  # a store that does not train reads or refuses
            path = self.path(store)
            if not path.exists():
                with claim(path, wait=True):
                    return self.run(store, claimed=True)
        res = store.run(self.model, self.dataset, **self.kwargs())
        retry = self.retry(res)
        return retry.run(store) if retry is not None else res

    def retry(self, result: dict) -> "RunRequest | None":
        """The request to train instead of one whose ``result`` stopped on an early plateau
        (None when it did not, or when the profile sets no plateau patience)."""
        if self.plateau_patience is None or self.plateau_patience <= self.patience or not stopped_on_plateau(result):
            return None
        return replace(self, patience=self.plateau_patience, plateau_patience=None)

    def path(self, store: RunStore) -> Path:
        kw = self.kwargs()
        kw.pop("isolate")
        return store.path(self.model, self.dataset, **kw)

    @property
    def setting(self) -> str:
        """The overrides and noise, as in the stored file name ('' for the defaults)."""
        return _tag(dict(self.overrides), self.visual_noise).rstrip("-")


def request(model: str, dataset: str, profile: Profile, seed: int | None = None, overrides: dict | None = None,
            visual_noise: float = 0.0) -> RunRequest:
    """One run at the profile's epochs and patience for ``model`` (``seed`` None: the profile's first seed)."""
    return RunRequest(model, dataset, profile.seeds[0] if seed is None else seed, profile.epochs,
                      profile.patience_for(model),
                      tuple(sorted((overrides or {}).items())), float(visual_noise),
                      plateau_patience=profile.plateau_patience)


@contextlib.contextmanager
def claim(path: Path, wait: bool = False):
    """Hold ``<run>.claim`` locked while this process trains the run at ``path``. When another
    live process holds it: yield False, or with ``wait`` block until it is done (then the run
    is stored and is read back). The lock (``flock``) dies with its process, so a killed run
    leaves no stale claim behind; the file is removed when the holder is done."""
    import fcntl

    lock = Path(path).with_suffix(".claim")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            print(f"waiting for another process to finish training {Path(path).name}", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
            fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["RunRequest", "claim", "request"]
