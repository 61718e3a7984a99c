"""Where a profile's report files go, and which of them are wall-clock measurements.

reports/<profile>/tables/     the report's tables and figures (DVC output of the report stage)
reports/<profile>/analysis/   one folder per analysis (DVC outputs; repeat bit for bit on CPU)
reports/<profile>/timings/    wall-clock measurements: each run's times (report stage) and a
                              wall-clock analysis's folder (its stage's DVC output, whose time files
                              .dvcignore keeps out of the hash, so rerunning it never changes
                              dvc.lock). The smoke profile's are not committed (.gitignore): its
                              timings are noise.
"""

from __future__ import annotations

from pathlib import Path

from rescom.analysis import ANALYSES, analysis

TIMINGS = "timings"
# Analyses whose results are wall-clock times (the registry says which): their folder is under timings/.
WALL_CLOCK_ANALYSES = tuple(name for name, entry in ANALYSES.items() if entry.wall_clock)
# Profiles whose timings/ is git-ignored (.gitignore): their README names the files without linking them.
UNCOMMITTED_TIMINGS = ("smoke",)


def analysis_dir(profile_name: str, name: str) -> Path:
    """reports/<profile>/analysis/<name> or, for a wall-clock analysis, reports/<profile>/timings/<name>."""
    folder = TIMINGS if analysis(name).wall_clock else "analysis"
    return Path("reports") / profile_name / folder / name.replace("_", "-")
