"""DVC's analysis stage: one analysis of a profile into reports/<profile>/analysis/<name>/."""

from __future__ import annotations

from rescom.stages.entry import one_line_errors, stage_parser


def run(params: str, name: str) -> str:
    """Run the analysis; its summary as indented JSON."""
    import json

    from rescom.pipeline.runner import run_analysis

    return json.dumps(run_analysis(params, name), indent=2, default=str)


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("analysis", __doc__)
    parser.add_argument("name", help="simulate_pairs, gradients, similarity or inference_cost.")
    args = parser.parse_args(argv)
    with one_line_errors():
        print(run(args.params, args.name))


if __name__ == "__main__":
    main()
