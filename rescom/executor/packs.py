"""Jobs from ready stages: one stage each, or packs of up to K stages that can share one process.

Which stages may share a process, and the one command that trains them together, are the training
side's knowledge (rescom.pipeline.packing, the companion issue "Pack several runs on one GPU"), read
from each stage's record (its dvc.yaml `meta`, never its command): `pack_key(record)` gives stages
whose records share a non-None key, and `pack_command({name: record}, results_path)` the argv of one
process that trains all of them and writes {stage name: {"ok": bool, "error": str}} to results_path.
It is imported only when --pack asks for packs.
"""

from __future__ import annotations

from collections.abc import Callable


def packing_module():
    from rescom.pipeline import packing

    return packing


def group_into_packs(names: list[str], records: dict[str, dict | None], size: int,
                     pack_key: Callable[[dict | None], str | None]) -> list[list[str]]:
    """Split ready stages (in plan order) into jobs: stages whose records have the same non-None key
    in packs of at most `size`, in the order the first of each pack became ready; every other stage alone."""
    jobs: list[list[str]] = []
    open_pack: dict[str, list[str]] = {}
    for name in names:
        key = pack_key(records[name]) if size > 1 else None
        if key is None:
            jobs.append([name])
            continue
        if key not in open_pack or len(open_pack[key]) >= size:
            open_pack[key] = []
            jobs.append(open_pack[key])
        open_pack[key].append(name)
    return jobs


def stages_that_succeeded(names: list[str], results: dict | None) -> dict[str, str]:
    """name -> "" for a stage the pack trained to the end, or the error it reported (a missing entry,
    or no results file at all, counts as failed: the process died before writing it)."""
    outcome = {}
    for name in names:
        entry = (results or {}).get(name)
        if entry is None:
            outcome[name] = "the pack wrote no result for this stage"
        else:
            outcome[name] = "" if entry.get("ok") else (entry.get("error") or "failed")
    return outcome
