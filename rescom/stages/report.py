"""DVC's report stage: reports/<profile>/ rendered from the profile's finished runs."""

from __future__ import annotations

from rescom.stages.entry import one_line_errors, stage_parser


def main(argv: list[str] | None = None) -> None:
    args = stage_parser("report", __doc__).parse_args(argv)
    with one_line_errors():
        from rescom.report.render import render_reports

        print(f"wrote {render_reports(args.params)}")


if __name__ == "__main__":
    main()
