"""Jobs from ready stages: one stage each, or packs of up to K stages that can share one process.

Which stages may share a process, and the one command that trains them together, are the training
side's knowledge (rescom.pipeline.packing, the companion issue "Pack several runs on one GPU"):
`pack_key(cmd)` gives stages whose interpolated cmd strings share a non-None key, and
`pack_command(cmds, results_path)` the argv of one process that trains all of them and writes
{cmd: {"ok": bool, "error": str}} to results_path. It is imported only when --pack asks for packs.
"""

from __future__ import annotations

from collections.abc import Callable


def packing_module():
    from rescom.pipeline import packing

    return packing


def group_into_packs(names: list[str], commands: dict[str, list[str]], size: int,
                     pack_key: Callable[[str], str | None]) -> list[list[str]]:
    """Split ready stages (in plan order) into jobs: stages with the same non-None key in packs of
    at most `size`, in the order the first of each pack became ready; every other stage alone.
    A stage whose cmd is several lines never packs (one process runs one command)."""
    jobs: list[list[str]] = []
    open_pack: dict[str, list[str]] = {}
    for name in names:
        lines = commands[name]
        key = pack_key(lines[0]) if size > 1 and len(lines) == 1 else None
        if key is None:
            jobs.append([name])
            continue
        if key not in open_pack or len(open_pack[key]) >= size:
            open_pack[key] = []
            jobs.append(open_pack[key])
        open_pack[key].append(name)
    return jobs


def stages_that_succeeded(names: list[str], commands: dict[str, list[str]], results: dict | None) -> dict[str, str]:
    """name -> "" for a stage the pack trained to the end, or the error it reported (a missing entry,
    or no results file at all, counts as failed: the process died before writing it)."""
    outcome = {}
    for name in names:
        entry = (results or {}).get(commands[name][0])
        if entry is None:
            outcome[name] = "the pack wrote no result for this stage"
        else:
            outcome[name] = "" if entry.get("ok") else (entry.get("error") or "failed")
    return outcome
