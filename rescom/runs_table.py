"""The MLflow runs of the project's store as a pandas table (for `rescom runs` and reports).

One row per run: its experiment (profile/table), variant (the run name without its seed), seed,
epochs and the headline numbers. Summary values are read from `summary/<key>` and, for runs logged
before that section existed, from the bare key.
"""

from __future__ import annotations

import re

import pandas as pd

from rescom.errors import UsageError
from rescom.tracking import SUMMARY_PREFIX, default_tracking_uri, sqlite_path

HEADLINE = {"last_test_all": "last All", "best_test_all": "best All", "last_test_few": "last Few",
            "last_test_ece": "last ECE"}
NUMERIC = ("seed", "epochs", *HEADLINE.values())


def _variant(run_name: str, seed) -> str:
    """'supcon_siambs-q32-s0' with seed 0 -> 'supcon_siambs-q32', for runs logged before the `variant` tag."""
    return re.sub(rf"-s{re.escape(str(seed))}$", "", run_name) if seed not in (None, "") else run_name


def runs_frame(experiment: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The newest runs first; an experiment the store does not have is a UsageError naming it."""
    from mlflow.tracking import MlflowClient

    uri = default_tracking_uri()
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        if experiment:
            raise UsageError(f"no MLflow experiment '{experiment}': the store {database} does not exist yet")
        return pd.DataFrame()  # no store yet: a read-only command must not create one
    client = MlflowClient(uri)
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    ids = list(names)
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = ", ".join(sorted(names.values())) or "none"
            raise UsageError(f"no MLflow experiment '{experiment}' in {uri} (known: {known})")
        ids = [found.experiment_id]
    runs = client.search_runs(ids, max_results=limit, order_by=["attributes.start_time DESC"]) if ids else []
    rows = []
    for run in runs:
        params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
        seed = params.get("run.seed", "")
        row = {"experiment": names.get(run.info.experiment_id, run.info.experiment_id),
               "variant": tags.get("variant") or _variant(tags.get("mlflow.runName", run.info.run_name or ""), seed),
               "seed": seed, "epochs": params.get("optim.epochs", ""), "status": run.info.status}
        for key, column in HEADLINE.items():
            row[column] = metrics.get(SUMMARY_PREFIX + key, metrics.get(key, float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)
