"""The registry of report tables (rescom/report/tables.py) is the one place a table is declared:
every registered table reaches every view (its users: tests/test_registries.py)."""

from __future__ import annotations

from rescom.report.diff import ROW_KEYS
from rescom.report.tables import TABLES, Points


def test_every_registered_table_names_its_rows_and_title_and_is_diffed_by_its_keys():
    for name, table in TABLES.items():
        assert table.title and table.reference and table.keys, name
        assert ROW_KEYS[name] == table.keys, name
        if table.baseline is not None:
            assert table.baseline.column in table.keys, name
        if isinstance(table.figure, Points):  # the label formats columns the table has
            assert all(field.split(":")[0] in table.keys for field in _fields(table.figure.label)), name


def _fields(text: str) -> list[str]:
    import string

    return [field for _, field, _, _ in string.Formatter().parse(text) if field]


def test_a_registered_table_reaches_the_report_index(tmp_path, monkeypatch):
    """The smoke profile before any run: the index lists each of its tables by its registered title
    (before the registry, a table missing from render.TITLES silently dropped out)."""
    from pathlib import Path

    from rescom.pipeline.catalogue import load_profile
    from rescom.report.render import render_reports

    params = Path("pipelines/smoke/params.yaml").resolve()
    monkeypatch.chdir(tmp_path)  # no runs/ here: nothing finished
    index = (render_reports(params, tmp_path / "reports") / "README.md").read_text()
    names = [name for name in TABLES if name in load_profile(params).params]
    assert len(names) >= 6
    for name in names:
        assert f"{TABLES[name].title} ({TABLES[name].reference})" in index, name


def test_every_plot_a_dvc_file_declares_is_a_curves_file_the_report_writes():
    """reports/<profile>/curves/<table>.csv exists only for tables with curves; a plot on any other
    (draws.csv before) made `dvc plots show` warn that it failed to load some plots."""
    from pathlib import Path

    import yaml

    from rescom.report.summary import CURVES_DIR

    for dvc_file in (Path("dvc.yaml"), *sorted(Path("pipelines").glob("*/dvc.yaml"))):
        for plot in yaml.safe_load(dvc_file.read_text()).get("plots", []):
            (spec,) = plot.values()
            for path in spec["y"]:
                folder, name = Path(path).parts[-2:]
                assert folder == CURVES_DIR and TABLES[Path(name).stem].curves, (dvc_file, path)
