"""The netns tests' helpers that decide a verdict, checked without root."""

from __future__ import annotations

from tests.netns.lab import same_since


def test_same_since_allows_a_millisecond_of_clock_rounding_and_no_reset() -> None:
    assert same_since(("18:56:33.800", "18:56:33.800"), ("18:56:33.799", "18:56:33.800"))
    assert same_since({"tor": "2026-12-06 18:56:33.800", "ToR": "1/0"},
                      {"tor": "2026-12-06 18:56:33.801", "ToR": "1/0"})  # fmt: skip
    # A reset: the session started again later, or the ToR counted another one.
    assert not same_since(("18:56:35.120",), ("18:56:33.800",))
    assert not same_since({"tor": "18:56:33.800", "ToR": "2/1"},
                          {"tor": "18:56:33.800", "ToR": "1/0"})  # fmt: skip
    assert not same_since({"tor": "2026-12-07 18:56:33.800"}, {"tor": "2026-12-06 18:56:33.800"})
    assert not same_since(None, ("18:56:33.800",))
    assert same_since(None, None)
