"""Small text forms the commands share: percentages, counted words, durations."""

from __future__ import annotations

__all__ = ["duration", "pct", "plural"]


def pct(value: float | None) -> str:
    """``91.23%``, or ``-`` when there is no value."""
    return "-" if value is None else f"{100 * value:.2f}%"


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``1,200 steps``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """``2 min 01 s`` from a minute on, else ``12.3 s``."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"
