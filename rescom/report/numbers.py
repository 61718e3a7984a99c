"""How the reports write numbers: one minus sign (ASCII '-', the one pandas writes in every CSV) in
Markdown, CSV and labels alike, and signed differences with an explicit '+'."""

from __future__ import annotations


def signed(value: float) -> str:
    """+1.26 / -0.25: a paired difference or a gap to the paper, sign always written."""
    return f"{value:+.2f}"


def difference_label(better: str, worse: str) -> str:
    """'rescom - bs': the label of a difference column or claim."""
    return f"{better} - {worse}"
