"""Argument types the benchmark scripts share: counts that must be whole numbers of at
least 1 (a batch, a number of rounds, images, threads) or of at least 0 (worker processes).

argparse turns the ``ArgumentTypeError`` these raise into one line naming the option, the
value and what would be valid, and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number; valid: a whole number >= {least}"
        ) from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is too small; valid: a whole number >= {least}")
    return value


def count(text: str) -> int:
    """A whole number >= 1."""
    return _whole(text, 1)


def workers(text: str) -> int:
    """A whole number >= 0 (0: no worker processes)."""
    return _whole(text, 0)
