"""DVC's training stage: one run of one table of a profile (continues an interrupted run of the same config)."""

from __future__ import annotations

from rescom.stages.entry import stage_main


def parse_items(items: list[str]) -> dict[str, str]:
    """['imbalance=100', 'seed=0'] -> {'imbalance': '100', 'seed': '0'}; UsageError naming a bad entry."""
    from rescom.errors import UsageError

    parsed = {}
    for entry in items:
        key, sep, value = entry.partition("=")
        if not sep:
            raise UsageError(f"--item {entry!r}: expected axis=value")
        parsed[key] = value
    return parsed


def run(params: str, table: str, items: list[str]) -> str:
    """Train the run; the line that gives its last and best top-1."""
    from rescom.pipeline.runner import train_table_run

    summary = train_table_run(params, table, parse_items(items))
    m = summary["metrics"]
    return (f"{table} {items}: last-epoch top-1 {m['last_test_all']:.2f}, best {m['best_test_all']:.2f} "
            f"(epoch {m['best_epoch']})")


def main(argv: list[str] | None = None) -> None:
    stage_main("train", __doc__, run, argv, (["--table"], {"required": True}),
               (["--item"], {"dest": "items", "action": "append", "default": [], "metavar": "AXIS=VALUE",
                                  "help": "one per axis of the table"}))


if __name__ == "__main__":
    main()
