"""Print how many MLflow runs of a profile the workspace's store holds (tag `profile`), or, with
--training-stages LOCK, how many training stages a dvc.lock records. For check-smoke-reports.sh."""

import argparse
import os

import yaml

parser = argparse.ArgumentParser()
parser.add_argument("profile", nargs="?")
parser.add_argument("--training-stages", metavar="LOCK")
args = parser.parse_args()
if args.training_stages:
    stages = yaml.safe_load(open(args.training_stages))["stages"]
    print(sum("rescom.stages.train" in str(entry["cmd"]) for entry in stages.values()))
else:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{os.path.abspath('mlflow.db')}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.profile = '{args.profile}'", max_results=50000)
    print(len(runs))
