"""DVC's prepare stage: one dataset of a profile under data/prepared/<profile>/<key>."""

from __future__ import annotations

from rescom.stages.entry import one_line_errors, stage_parser


def run(params: str, key: str) -> str:
    """Prepare the params file's datasets entry `key`; the line that says what was prepared."""
    from rescom.pipeline.runner import prepare_dataset

    data = prepare_dataset(params, key)
    return (f"{key}: {sum(data.class_counts)} training images, counts {data.class_counts}, "
            f"{len(data.test.labels)} test images")


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("prepare", __doc__)
    parser.add_argument("--key", required=True, help="An entry of the params file's datasets section.")
    args = parser.parse_args(argv)
    with one_line_errors():
        print(run(args.params, args.key))


if __name__ == "__main__":
    main()
