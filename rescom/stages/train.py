"""DVC's training stage: one run of one table of a profile (continues an interrupted run of the same config)."""

from __future__ import annotations

from rescom.stages.entry import one_line_errors, stage_parser


def parse_items(items: list[str]) -> dict[str, str]:
    """['imbalance=100', 'seed=0'] -> {'imbalance': '100', 'seed': '0'}; ValueError naming a bad entry."""
    parsed = {}
    for entry in items:
        key, sep, value = entry.partition("=")
        if not sep:
            raise ValueError(f"--item {entry!r}: expected axis=value")
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
    parser = stage_parser("train", __doc__)
    parser.add_argument("--table", required=True)
    parser.add_argument("--item", action="append", default=[], help="axis=value, one per axis of the table.")
    args = parser.parse_args(argv)
    with one_line_errors():
        print(run(args.params, args.table, args.item))


if __name__ == "__main__":
    main()
