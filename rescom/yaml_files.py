"""Reading a user's YAML file (config file, params file) into a mapping, with one-line errors.

Every way such a file can be bad (missing, empty, not text, not YAML, not a mapping) becomes one
exception of the caller's error type whose message names the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def read_yaml_mapping(path: str | Path, what: str, error: type[Exception]) -> dict:
    """The mapping in path; `what` names the kind of file in messages ("config file", "params file")."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not UTF-8 text (byte {err.start}): not a YAML file") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{what} {path} is not valid YAML: {_one_line(err)}") from None
    if tree is None:
        raise error(f"{what} {path} is empty: expected a mapping of sections")
    if not isinstance(tree, dict):
        raise error(f"{what} {path}: expected a mapping of sections, got {type(tree).__name__}")
    return tree


def _one_line(err: yaml.YAMLError) -> str:
    """PyYAML's messages span several lines (context, caret); keep the problem and where it is."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem
