"""`nas data summary` for a kind without folds: images per split and classes, through the real command line."""

import json

import yaml


def test_summary_of_a_plain_dataset_reports_its_splits(nas, tmp_path):
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "digits", "validation_fraction": 0.2}}))
    out = nas("data", "summary", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["dataset"] == "digits" and summary["classes"] == 10
    assert summary["images"] == 1797 == sum(summary["splits"].values())
    assert summary["splits"]["val"] > 0 and summary["folds"] is None and summary["treatments"] is None


def test_summary_of_an_unknown_kind_is_a_one_line_error(nas, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "bbbc999"}}))
    out = nas("data", "summary", str(cfg))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "dataset.name" in out.stderr.strip().splitlines()[-1]
