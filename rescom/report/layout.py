"""Where a profile's report files go, and which of them are wall-clock measurements.

reports/<profile>/tables/     the report's tables and figures (DVC output of the report stage)
reports/<profile>/analysis/   one folder per analysis (DVC outputs; repeat bit for bit on CPU)
reports/<profile>/timings/    wall-clock measurements (inference cost): written by their stage but
                              no DVC output, so rerunning them never changes dvc.lock. The smoke
                              profile's are not committed (.gitignore): its timings are noise.
"""

from __future__ import annotations

from pathlib import Path

TIMINGS = "timings"
# Analyses whose results are wall-clock times: their folder is under timings/, not analysis/.
WALL_CLOCK_ANALYSES = ("inference_cost",)
# Profiles whose timings/ is git-ignored (.gitignore): their README names the files without linking them.
UNCOMMITTED_TIMINGS = ("smoke",)


def analysis_dir(profile_name: str, analysis: str) -> Path:
    """reports/<profile>/analysis/<name> or, for a wall-clock analysis, reports/<profile>/timings/<name>."""
    folder = TIMINGS if analysis in WALL_CLOCK_ANALYSES else "analysis"
    return Path("reports") / profile_name / folder / analysis.replace("_", "-")
