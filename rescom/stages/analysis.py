"""DVC's analysis stage: one analysis of a profile into reports/<profile>/analysis/<name>/."""

from __future__ import annotations

from rescom.analysis import ANALYSES
from rescom.stages.entry import stage_main


def run(params: str, name: str) -> str:
    """Run the analysis; its summary as indented JSON."""
    import json

    from rescom.pipeline.runner import run_analysis

    return json.dumps(run_analysis(params, name), indent=2, default=str)


def main(argv: list[str] | None = None) -> None:
    stage_main("analysis", __doc__, run, argv, (["name"], {"choices": list(ANALYSES), "help": "The analysis (rescom.analysis.ANALYSES)."}))


if __name__ == "__main__":
    main()
