"""The narrow entry points DVC stages run, one per kind of stage: `python -m rescom.stages.<kind>`.

Each imports only what its stage runs, so a stage's code deps (derived from its entry by
pipeline/code_deps.py) are that code and nothing else: editing the CLI or the executor
leaves every run up to date. The user-facing `rescom pipeline ...` commands call the
same `run` functions.
"""
