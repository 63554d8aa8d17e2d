"""ssr_models.schedule: warm-up + cosine, and extending the total without a jump (issue 10 #11)."""

from __future__ import annotations

import math

import pytest

from ssr_core.errors import ConfigError
from ssr_models.schedule import LRSchedule


def textbook(k: int, steps: int, warmup: int) -> float:
    """Linear warm-up then cosine to 0 at ``steps`` (the usual formula, written independently)."""
    if k < warmup:
        return (k + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (k - warmup) / (steps - warmup))))


def test_new_schedule_is_the_textbook_cosine() -> None:
    s = LRSchedule(40, warmup=5)
    assert [s.factor(k) for k in range(41)] == pytest.approx([textbook(k, 40, 5) for k in range(41)],
                                                               abs=1e-12)
    assert LRSchedule(40, warmup=5, kind="constant").factor(30) == 1.0


def test_more_steps_continue_smoothly_to_zero_at_the_new_total() -> None:
    old = LRSchedule(20, warmup=2)
    new, note = old.with_steps(40, at=10)
    assert note is None
    rates = [new.factor(k) for k in range(10, 41)]
    assert rates[0] == pytest.approx(old.factor(10), abs=1e-12)  # no jump at the resume step
    assert all(a > b for a, b in zip(rates[:-1], rates[1:], strict=True))  # decays, no restart
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)
    # The remaining cosine is stretched: the same fraction of the rest is left halfway.
    assert new.factor(25) == pytest.approx(0.5 * (1 + math.cos(math.pi * (0.5 * (1 + 8 / 18)))),
                                           abs=1e-12)
    again, _ = new.with_steps(60, at=30)  # extending twice stays continuous
    assert again.factor(30) == pytest.approx(new.factor(30), abs=1e-12)


def test_ended_cosine_follows_the_new_total_and_says_so() -> None:
    old = LRSchedule(20, warmup=2)
    assert old.factor(20) == pytest.approx(0.0, abs=1e-12)
    new, note = old.with_steps(40, at=20)
    assert note is not None and "had ended at step 20" in note
    assert new.factor(20) == pytest.approx(textbook(20, 40, 2), abs=1e-12)


def test_same_total_and_state_round_trip() -> None:
    s, note = LRSchedule(20, warmup=2).with_steps(40, at=7)
    assert s.with_steps(40, at=12) == (s, None)
    assert LRSchedule.from_state_dict(s.state_dict()) == s
    with pytest.raises(ConfigError, match="cannot continue at step 12"):
        s.with_steps(12, at=12)
