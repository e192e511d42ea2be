"""The shared bounds: the per-subject rate limiter and text neutralised for spreadsheets and chat."""

from __future__ import annotations

import pytest

from common.errors import TooManyRequests
from common.limits import RateLimiter, neutralised, validation_errors


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_subject_gets_its_burst_then_waits_for_the_refill():
    clock = Ticking()
    limiter = RateLimiter("check-ins", per_minute=30, burst=2, clock=clock)
    limiter.check("lead-1")
    limiter.check("lead-1")
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("lead-1")
    assert refused.value.retry_after_s == 2 and refused.value.status_code == 429
    limiter.check("lead-2")  # another subject has its own allowance
    clock.now = 2.0
    limiter.check("lead-1")
    with pytest.raises(TooManyRequests):
        limiter.check("lead-1")


def test_a_zero_rate_turns_the_limit_off():
    limiter = RateLimiter("imports", per_minute=0, burst=1)
    for _ in range(100):
        limiter.check("someone")


def test_idle_subjects_are_forgotten_when_the_table_is_full():
    clock = Ticking()
    limiter = RateLimiter("check-ins", per_minute=60, burst=1, clock=clock, max_subjects=10)
    for n in range(10):
        limiter.check(f"s{n}")
    clock.now = 5.0  # every bucket has refilled
    limiter.check("newcomer")
    assert len(limiter._buckets) == 1


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"])
def test_formula_prefixes_are_neutralised(text):
    assert neutralised(text).startswith("'")


def test_links_and_markup_do_not_survive():
    shown = neutralised("[click](http://evil.example) <b>")
    assert "[" not in shown and "<" not in shown
    assert neutralised("张三 101 室") == "张三 101 室"


def test_validation_errors_keep_where_and_what_but_not_the_input():
    errors = validation_errors(
        [{"loc": ("body", "x"), "msg": "bad", "type": "t", "input": "SECRET", "ctx": {"v": "SECRET"}}]
    )
    assert errors == [{"loc": ["body", "x"], "msg": "bad", "type": "t"}]
