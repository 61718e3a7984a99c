"""One profile's columns of `dvc exp show` under short names: its headline metrics and defining params.

A bare `dvc exp show` lists every profile's metrics and every params key (about 575 columns). `rescom
exp show --profile P` keeps the profile's `reports/<P>/summary.json` (per table and row the last-epoch
All, main also Few; or the tables asked for) and the params that define it: `profile`, each prepared
set's imbalance and the training settings of DEFINING_PARAMS. DVC names a column `key` when one file
has it and `file:key` when several do (every profile's summary has `main.bs.all`), so the `--keep`
pattern's names are worked out from DVC's own collection with DVC's rule; the table is then drawn from
DVC's CSV under names unique within the profile (`main.bs.all`, `epochs`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

from rescom.config import flatten
from rescom.errors import UsageError
from rescom.pipeline.catalogue import Profile
from rescom.report.summary import SUMMARY_NAME

DEFINING_PARAMS = ("profile", "train.optim.epochs", "train.optim.batch_size", "train.optim.lr",
                   "train.optim.schedule", "train.model.backbone", "train.data.recipe")
# A terminal's columns unless --all-columns: the main table and the training settings fit 200 columns
# for the default profile; the other tables, the profile's name and the sets' imbalances do not.
HEADLINE = ("main", "epochs", "batch_size", "lr", "schedule", "backbone", "recipe")
# DVC's own columns kept: the row's name (an experiment's, else its rev), kind and date. State and
# Executor (of queued and running experiments) go with the rest; `--keep State` brings them back.
DVC_COLUMNS = ("Experiment", "rev", "typ", "Created")
# Every column DVC makes itself; a params or metrics key spelled like one gets its file prefix.
DVC_OWN_HEADERS = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")


def summary_path(profile_name: str) -> Path:
    return Path("reports") / profile_name / SUMMARY_NAME


def defining_params(profile: Profile) -> dict[str, tuple[str, ...]]:
    """{flattened param key: short name's parts} of the keys that define the profile's experiment."""
    flat = flatten({k: v for k, v in profile.params.items() if k != "claims"})
    keys = {k: (k.split(".")[-1],) for k in DEFINING_PARAMS if k in flat}
    return keys | {f"datasets.{name}.imbalance": ("imbalance", name)
                   for name, spec in profile.params["datasets"].items() if isinstance(spec, dict) and "imbalance" in spec}


def headline_metrics(profile_name: str, tables: list[str] | None = None) -> dict[str, tuple[str, ...]]:
    """{summary key table.row.metric: (table, row, metric)}, only `tables` if given; {} before the first
    report. A row label may hold a dot (beta 0.999999), so the parts come from the tree, not the key."""
    path = summary_path(profile_name)
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text())
    unknown = sorted(set(tables or []) - set(summary))
    if unknown:
        raise UsageError(f"{path} has no table {', '.join(unknown)} (it has {', '.join(sorted(summary))})")
    return {f"{t}.{r}.{m}": (t, r, m) for t, rows in summary.items() if not tables or t in tables
            for r, metrics in rows.items() for m in metrics}


def collected_keys(root: str | Path = ".") -> dict[str, list[str]]:
    """{file: flattened keys} of every params and metrics file DVC collects in the workspace."""
    from dvc.repo import Repo

    files: dict[str, list[str]] = {}
    with Repo(str(root)) as repo:
        for collected in (repo.metrics.show(), repo.params.show()):
            for path, entry in next(iter(collected.values()), {}).get("data", {}).items():
                data = entry.get("data")
                files[path] = list(flatten(data)) if isinstance(data, dict) else []
    return files


def column_names(files: dict[str, list[str]], wanted: dict[str, dict[str, tuple]]) -> dict[str, tuple]:
    """{DVC's column name: short parts} of each wanted {file: {key: parts}} DVC collects: the bare key
    when no other file (nor one of DVC's own columns) has it, else file:key."""
    counts = Counter(key for keys in files.values() for key in keys)
    counts.update(DVC_OWN_HEADERS)
    return {key if counts[key] == 1 else f"{path}:{key}": parts
            for path, keys in wanted.items() for key, parts in keys.items() if key in set(files.get(path, ()))}


def profile_columns(profile: Profile, tables: list[str] | None = None, root: str | Path = ".") -> dict[str, tuple]:
    """{DVC's column name: short parts} of this profile's metrics and defining params."""
    wanted = {summary_path(profile.name).as_posix(): headline_metrics(profile.name, tables),
              profile.path.as_posix(): defining_params(profile)}
    return column_names(collected_keys(root), wanted)


def exp_show_args(columns: dict[str, tuple], extra: list[str], own_table: bool) -> list[str]:
    """`dvc exp show` arguments keeping exactly these columns: as CSV for `render` when `own_table`,
    else in the format the user asked DVC for. A --sort-by may use the short name."""
    by_short = {".".join(parts): name for name, parts in columns.items()}
    pairs = zip(["", *extra], extra, strict=False)  # (predecessor, argument): the longer list's last entry is unused
    extra = [by_short.get(arg, arg) if before == "--sort-by" else arg for before, arg in pairs]
    kept = [*(DVC_COLUMNS if own_table else ("Experiment", "Created")), *columns]  # DVC's table merges rev, typ
    pattern = "^(?:" + "|".join(re.escape(name) for name in kept) + ")$"
    return ["exp", "show", "--drop", ".*", "--keep", pattern, *(["--csv"] if own_table else []), *extra]


def render(dvc_csv: str, columns: dict[str, tuple], every_column: bool, console=None) -> None:
    """DVC's CSV as a table under short names. On a terminal: the headline columns unless
    `every_column`, each table's name over its first column; elsewhere: every column as TSV."""
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    console = console or Console()
    reader = csv.DictReader(io.StringIO(dvc_csv))
    fields = [f for f in reader.fieldnames or [] if f not in DVC_COLUMNS]
    parts = {f: columns.get(f, (f,)) for f in fields}  # a column the user --keep's keeps DVC's name
    if console.is_terminal and not every_column:
        fields = [f for f in fields if f not in columns or parts[f][0] in HEADLINE]
    branch = "└ " if console.is_terminal else ""  # an experiment under its baseline commit, as in DVC's table
    rows = [[("" if row["typ"] == "baseline" else branch) + (row["Experiment"] or row["rev"]),
             row["Created"].replace("T", " ")[:16], *(row[f] for f in fields)] for row in reader]
    if not console.is_terminal:
        for cells in [["Experiment", "Created", *(".".join(parts[f]) for f in fields)], *rows]:
            console.file.write("\t".join(cells) + "\n")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Experiment", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    previous: tuple = ()
    for at, f in enumerate(fields, start=2):  # a table's and a row's name said once, over their first column
        lines = [p if parts[f][:i + 1] != previous[:i + 1] else "" for i, p in enumerate(parts[f])]
        numeric = all(re.fullmatch(r"[-+.\deE]+", cells[at]) for cells in rows if cells[at])
        table.add_column("\n".join(lines), justify="right" if numeric else "left", overflow="fold")
        previous = parts[f]
    for cells in rows:
        table.add_row(*(cell or "-" for cell in cells))
    # Whole cells even when wider than the terminal (--all-columns): folded numbers are unreadable.
    console.width = max(console.width, Measurement.get(console, console.options.update_width(10**4), table).maximum)
    console.print(table)
