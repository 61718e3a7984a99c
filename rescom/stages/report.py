"""DVC's report stage: reports/<profile>/ rendered from the profile's finished runs."""

from __future__ import annotations

from rescom.stages.entry import stage_main


def run(params: str) -> str:
    from rescom.report.render import render_reports

    return f"wrote {render_reports(params)}"


def main(argv: list[str] | None = None) -> None:
    stage_main("report", __doc__, run, argv)


if __name__ == "__main__":
    main()
