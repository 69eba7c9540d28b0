"""Figure 7: the verdict labels the paper's two readings."""
from __future__ import annotations

from mealrec.reproduce import representations as V


def test_alignment_verdict_labels_the_two_readings():
    import numpy as np

    rng = np.random.default_rng(0)
    target = rng.normal(size=(300, 8))
    far, near = rng.normal(size=(300, 8)), target + 0.3 * rng.normal(size=(300, 8))
    frames = rng.normal(size=(300, 5, 8))
    mealrec = {"user": near, "target_item": target, "frames_before": frames,
               "frames_after": 0.5 * frames + near[:, None, :]}  # TCD pulls frames towards the user
    text = V.alignment_verdict({"tedrec": {"user": far, "target_item": target}, "mealrec-tedrec": mealrec})
    assert text.startswith("reproduces: User-target cosine") and "TCD moves frames towards" in text
    mealrec["frames_after"] = frames  # no pull: only the first reading holds
    text = V.alignment_verdict({"tedrec": {"user": far, "target_item": target}, "mealrec-tedrec": mealrec})
    assert text.startswith("partly reproduces:")
    text = V.alignment_verdict({"tedrec": {"user": near, "target_item": target},
                                "mealrec-tedrec": {**mealrec, "user": far}})
    assert text.startswith("does not reproduce:")
