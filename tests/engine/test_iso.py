"""`iso` gives exactly the text datetime gives, for any time an execution can have."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from engine.state import iso


def reference(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False))
@example(0.0)
@example(1.9999996)  # microseconds round up into the next second
@example(1_700_000_000.0009995)
@example(1_700_000_000.9999999)
@example(86_399.9999996)  # ... and into the next day
@example(1_700_000_000.0078125)  # exactly half a microsecond
@example(-0.5)
@example(-1.0000004)
def test_iso_matches_datetime(ts: float) -> None:
    assert iso(ts) == reference(ts)


def test_iso_of_nothing_is_nothing() -> None:
    assert iso(None) is None
    assert iso(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"
