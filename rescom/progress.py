"""Rich progress bars shared by every long loop (training epochs, evaluation, ablations)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

console = Console(stderr=True, log_path=False)


def progress_bar() -> Progress:
    """Description, bar, n/N, elapsed, ETA and a free-text field for running loss and accuracy."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    )
