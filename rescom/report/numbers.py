"""How the reports write numbers: one minus sign (ASCII '-', the one pandas writes in every CSV) in
Markdown, CSV and labels alike, and signed differences with an explicit '+'."""

from __future__ import annotations

MINUS = "-"


def signed(value: float, digits: int = 2) -> str:
    """+1.26 / -0.25: a paired difference or a gap to the paper, sign always written."""
    return f"{value:+.{digits}f}"


def difference_label(better: str, worse: str) -> str:
    """'rescom - bs': the label of a difference column or claim."""
    return f"{better} {MINUS} {worse}"
