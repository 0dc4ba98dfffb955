"""Tiny text sparklines: action durations in the history, log activity on the replay bar.

Text rather than Textual's Sparkline widget so a sparkline can sit inside a line of other
text (a trend row, the replay bar) and each point can carry its own style (a failed run).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"
GAP = "·"  # a point with no value (the action did not run)


def spark(values: Sequence[float | None], *, floor_zero: bool = True) -> str:
    """One block character per value, scaled to the largest; None becomes a dot."""
    present = [v for v in values if v is not None]
    if not present:
        return GAP * len(values)
    low = 0.0 if floor_zero else min(present)
    high = max(present)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(GAP)
        elif span <= 0:
            out.append(BLOCKS[0] if high <= 0 else BLOCKS[len(BLOCKS) // 2])
        else:
            level = round((v - low) / span * (len(BLOCKS) - 1))
            out.append(BLOCKS[max(0, min(len(BLOCKS) - 1, level))])
    return "".join(out)


def spark_text(values: Sequence[float | None], styles: Sequence[Style | str | None] | None = None) -> Text:
    """A sparkline as rich Text, each point styled (e.g. by the status of that execution)."""
    chars = spark(values)
    text = Text(no_wrap=True)
    for i, ch in enumerate(chars):
        style = styles[i] if styles is not None and i < len(styles) else None
        text.append(ch, style or "")
    return text


def resample(values: Sequence[int], width: int) -> list[int]:
    """Counts re-bucketed to `width` columns (sums, so no activity is lost)."""
    if width <= 0 or not values:
        return [0] * max(0, width)
    out = [0] * width
    n = len(values)
    for i, v in enumerate(values):
        out[min(width - 1, i * width // n)] += v
    return out
