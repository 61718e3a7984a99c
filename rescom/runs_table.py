"""The MLflow runs of the project's store as a pandas table (for `rescom runs` and reports)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rescom.tracking import default_tracking_uri

COLUMNS = {
    "tags.mlflow.runName": "run", "tags.method": "method", "tags.dataset": "dataset", "tags.profile": "profile",
    "status": "status", "metrics.last_test_all": "last all", "metrics.best_test_all": "best all",
    "metrics.last_test_few": "last few", "metrics.last_test_ece": "last ECE",
}


def runs_frame(experiment: str | None = None, limit: int = 50) -> pd.DataFrame:
    import mlflow

    uri = default_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return pd.DataFrame()  # no store yet: a read-only command must not create one
    mlflow.set_tracking_uri(uri)
    names = [experiment] if experiment else None
    frame = mlflow.search_runs(experiment_names=names, search_all_experiments=names is None,
                               max_results=limit, order_by=["attributes.start_time DESC"])
    if frame.empty:
        return frame
    present = [c for c in COLUMNS if c in frame.columns]
    return frame[present].rename(columns=COLUMNS)
