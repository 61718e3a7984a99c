"""Run a DVC pipeline's independent stages in parallel on Dask, with one writer of dvc.lock.

The controller (controller.py) asks DVC which stages `dvc repro` would run (plan.py), sends each
stage whose upstream stages are done to a Dask worker (cluster.py) as a job of one or more stages
(packs.py), the worker only runs the stage commands (stage_job.py), and the controller alone
records finished stages in dvc.lock. tracking_server.py starts the MLflow server that workers on
several machines log to.
"""
