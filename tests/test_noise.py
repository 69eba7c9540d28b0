"""Figure 5: the verdict follows its stated rule, and says when the features are placeholders."""
from __future__ import annotations

from mealrec.reproduce import get_profile
from mealrec.reproduce import noise as N

from .helpers import FixedRun, PlaceholderStore


def test_noise_verdict_follows_its_stated_rule(monkeypatch):
    prof = get_profile("full", "synthetic-small")
    levels = {0.0: .20, 0.1: .199, 0.3: .195, 0.5: .21}  # falls of at most 2.5%: slight
    monkeypatch.setattr(N, "noise_requests",
                        lambda d, p, s, m: {("mealrec-tedrec", k): FixedRun(v) for k, v in levels.items()})
    text = N.noise_robustness(PlaceholderStore(), "microlens-small", prof).verdict
    assert text.startswith("not tested here:") and "largest fall below sigma=0 is 2.5% on H@10" in text
    assert "only test that nothing breaks" in text and "(Rule: 'reproduces' = no noisy level lowers" in text
    real = PlaceholderStore()
    real.dataset = lambda name: type("D", (), {"metadata": {"visual_features": "extracted (VideoMAE)"}})()
    assert N.noise_robustness(real, "microlens-small", prof).verdict.startswith("reproduces:")
    levels[0.3] = .18  # a 10% fall
    assert N.noise_robustness(real, "microlens-small", prof).verdict.startswith("does not reproduce:")
