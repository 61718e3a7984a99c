"""A pipeline stage as data: the entry point it runs (its kind) and that entry's arguments.

dvc.yaml gets each stage's command, rendered here and nowhere else, and the record itself as the
stage's `meta`, which DVC interpolates like the command (`${item.seed}` becomes the run's seed) and
otherwise ignores: a change of `meta` stales no stage. Whatever needs to know what a stage runs
(its code deps in dvcfile.py, which stages may share a process in packing.py, the executor) reads
the record, never the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STAGE_ENTRY = "python -m rescom.stages."


@dataclass(frozen=True)
class StageRecord:
    """kind: the entry point, `python -m rescom.stages.<kind>` (download, prepare, train, analysis,
    report). target: its positional argument (the analysis or the source to download), if any.
    arguments: its options in command-line order, option -> value; a mapping value is one
    `--option key=value` per entry (a training stage's `item`: axis -> value)."""

    kind: str
    target: str | None = None
    arguments: dict = field(default_factory=dict)

    def command(self) -> str:
        words = [f"{STAGE_ENTRY}{self.kind}", *([self.target] if self.target is not None else [])]
        for option, value in self.arguments.items():
            pairs = [f"{key}={item}" for key, item in value.items()] if isinstance(value, dict) else [value]
            words += [f"--{option} {pair}" for pair in pairs]
        return " ".join(str(word) for word in words)

    def as_meta(self) -> dict:
        """The record as dvc.yaml's `meta` holds it (read back by `from_meta`)."""
        return {"kind": self.kind, **({"target": self.target} if self.target is not None else {}),
                "arguments": self.arguments}

    @classmethod
    def from_meta(cls, meta) -> StageRecord | None:
        """The record of a DVC stage's `meta` as DVC interpolated it; None for a stage written by
        hand (no record)."""
        if not isinstance(meta, dict) or "kind" not in meta:
            return None
        return cls(meta["kind"], meta.get("target"), dict(meta.get("arguments") or {}))
