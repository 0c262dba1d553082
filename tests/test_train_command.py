"""`nas train` through the real command line, and the shipped search configs."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT

from nas.config import load_config
from nas.data.loading import dataset_names
from nas.genome.architecture import load_architecture
from nas.model.network import build_model
from nas.model.preprocess import RawInput, load_preprocess
from nas.model.program import load_program

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # a loaded 2-core machine: torch's spinning threads only slow tiny nets down
QUICK = str(ROOT / "search_configs/digits_quick.yaml")
SMALL = str(ROOT / "examples/densenet_small.yaml")
REPORT_KEYS = {"val_accuracy", "test_accuracy", "train_loss", "epochs", "seconds", "images_per_second",
               "peak_memory_mb", "params", "flops", "threads"}  # fmt: skip


@pytest.mark.parametrize("path", sorted((ROOT / "search_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.dataset.name in dataset_names()
    assert config.encoding is None or Path(config.encoding).is_file()


def test_quickstart_reaches_95_percent_on_digits_and_saves_a_loadable_network(nas, tmp_path):
    save = tmp_path / "trained"
    out = nas("train", SMALL, "--config", QUICK, "--json", "--save", str(save), env=ONE_THREAD)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == REPORT_KEYS
    assert report["test_accuracy"] >= 0.95 and report["val_accuracy"] >= 0.9
    assert report["epochs"] == load_config(QUICK).fitness.epochs and report["params"] == 40166
    assert sorted(p.name for p in save.iterdir()) == [
        "architecture.yaml", "metrics.json", "model.pt2", "preprocess.json", "weights.pt"
    ]  # fmt: skip
    assert json.loads((save / "metrics.json").read_text())["test_accuracy"] == report["test_accuracy"]
    model = build_model(load_architecture(save / "architecture.yaml"))
    model.load_state_dict(torch.load(save / "weights.pt", weights_only=True))
    scripted = load_program(save / "model.pt2")
    x = 16 * torch.rand(4, 1, 8, 8)  # digits in scikit-learn's units, which the model file takes
    pre = load_preprocess(save / "preprocess.json")
    assert pre.weights == {"source": "trained", "epochs": report["epochs"], "val_accuracy": report["val_accuracy"],
                           "test_accuracy": report["test_accuracy"]}  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(RawInput(model.eval(), pre)(x), scripted(x), atol=1e-5)


def test_full_reports_test_accuracy_only_and_epochs_override(nas):
    out = nas("train", SMALL, "--config", QUICK, "--full", "--epochs", "1", "--seed", "3", "--json", env=ONE_THREAD)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["val_accuracy"] is None and report["test_accuracy"] > 0.3 and report["epochs"] == 1


def test_architecture_that_does_not_fit_the_data_is_one_line_exit_2(nas, tmp_path):
    arch = yaml.safe_load(open(SMALL))
    arch["in_channels"] = 3
    path = tmp_path / "rgb.yaml"
    path.write_text(yaml.safe_dump(arch))
    out = nas("train", str(path), "--config", QUICK, env=ONE_THREAD)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "in_channels is 3 but the dataset gives 1" in lines[0] and str(path) in lines[0]


def test_save_refuses_a_folder_with_foreign_files_before_training(nas, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = nas("train", SMALL, "--config", QUICK, "--save", str(tmp_path), env=ONE_THREAD)
    assert out.returncode == 2 and "notes.txt" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
