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


def test_text_summary_reads_as_words_and_numbers_not_python(nas, tmp_path):
    """The text output of a kind without treatments or folds: no `None`, no dict or list reprs; counts with
    thousands separators, the splits as `name count` pairs, and the same figures as `--json`."""
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "digits", "validation_fraction": 0.2}}))
    out = nas("data", "summary", str(cfg))
    assert out.returncode == 0, out.stderr
    summary = json.loads(nas("data", "summary", str(cfg), "--json").stdout)
    text = out.stdout
    for repr_mark in ("None", "{", "}", "[", "]", "'"):
        assert repr_mark not in text, (repr_mark, text)
    lines = {line.split("  ")[0].strip(): line[16:] for line in text.splitlines()}
    assert lines["images"] == "1,797" and lines["classes"] == "10"
    splits = summary["splits"]
    assert lines["splits"] == f"train {splits['train']:,}, val {splits['val']:,}, test {splits['test']:,}"
    assert lines["class names"] == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert not {"treatments", "compounds", "folds"} & set(lines)  # notions digits lacks: left out, null in JSON
