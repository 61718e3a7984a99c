"""The paper's published numbers, read as data and cited by table."""

from __future__ import annotations

from rescom.analysis.inference_cost import _paper_rows
from rescom.report.paper_values import paper_tables, paper_top1, reference_line


def test_main_table_values_come_with_their_table():
    assert paper_top1("cifar100-lt", 100.0, "bs") == (50.8, "ResCom paper (arXiv 2203.11506), Table 2")
    assert paper_top1("cifar10-lt", 10.0, "rescom")[0] == 92.0
    assert paper_top1("imagenet-lt", None, "rescom")[0] == 58.7  # Table 3, ResNet-50 (not Table 4's ResNeXt)
    assert paper_top1("cifar10-lt", 100.0, "supcon_bs") is None  # not in the paper's CIFAR tables
    assert paper_top1("fashion-mnist-lt", 100.0, "rescom") is None


def test_reference_line_shows_bs_paco_rescom_or_says_there_is_none():
    line = reference_line("cifar100-lt", 50.0)
    assert "Balanced Softmax 54.2" in line and "PaCo 56.0" in line and "ResCom 58.0" in line and "Table 2" in line
    assert "PaCo" not in reference_line("cifar10-lt", 100.0)  # PaCo has no CIFAR-10 row in Table 1
    assert "no published number" in reference_line("fashion-mnist-lt", 100.0)


def test_every_table_of_the_paper_is_in_the_data():
    assert set(paper_tables()["table"]) == {1, 2, 3, 4, 6, 7}
    rows = _paper_rows()
    assert len(rows) == 10 and all("2080Ti" in r["source"] for r in rows)
    assert {r["model"] for r in rows} >= {"ResCom (resnet50, imagenet-lt)", "RIDE (4 experts) (resnet50, inat2018)"}
