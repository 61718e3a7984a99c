"""DVC's prepare stage: one dataset of a profile under data/prepared/<profile>/<key>."""

from __future__ import annotations

from rescom.stages.entry import stage_main


def run(params: str, key: str) -> str:
    """Prepare the params file's datasets entry `key`; the line that says what was prepared."""
    from rescom.pipeline.runner import prepare_dataset

    data = prepare_dataset(params, key)
    return (f"{key}: {sum(data.class_counts)} training images, counts {data.class_counts}, "
            f"{len(data.test.labels)} test images")


def main(argv: list[str] | None = None) -> None:
    stage_main("prepare", __doc__, run, argv, (["--key"], {"required": True, "help": "A datasets entry."}))


if __name__ == "__main__":
    main()
