"""CSV tables that hold names from data open in a spreadsheet as text, never as formulas."""
from __future__ import annotations

import csv

from ffclr.data.csv_files import spreadsheet_text, write_csv
from ffclr.eval.metrics import write_metrics_csv


def test_formula_cells_become_text_and_numbers_stay(tmp_path):
    rows = [{"class": '=HYPERLINK("http://x","y")', "f1": "-0.25", "n": 3},
            {"class": "+cmd|' /C calc'!A0", "f1": "1e-3", "n": None},
            {"class": "@SUM(A1)", "f1": "smoke-detector", "n": -1},
            {"class": "-x", "f1": "\tTAB"}]
    path = write_csv(tmp_path / "t.csv", ["class", "f1", "n"], rows)
    read = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["class"] for r in read] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+cmd|' /C calc'!A0",
                                         "'@SUM(A1)", "'-x"]
    assert [r["f1"] for r in read] == ["-0.25", "1e-3", "smoke-detector", "'\tTAB"]
    assert [r["n"] for r in read] == ["3", "", "-1", ""]
    assert spreadsheet_text(-1.5) == -1.5 and list(tmp_path.iterdir()) == [path]


def test_probe_metrics_csv_escapes_a_hostile_class_name(tmp_path):
    metrics = {"per_class": [{"class_index": 0, "class": "=1+1", "precision": 1.0, "recall": 1.0,
                              "f1": 1.0, "support": 2, "n_train": 5}],
               "top1": 1.0, "top5": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0, "n_test": 2}
    rows = list(csv.DictReader(write_metrics_csv(metrics, tmp_path / "m.csv").open()))
    assert rows[0]["class"] == "'=1+1" and rows[0]["f1"] == "1.0000"
    assert [r["class"] for r in rows[1:]] == [f"overall:{k}" for k in
                                              ("top1", "top5", "balanced_accuracy", "macro_f1")]
