"""`nas config check`: a line per check (config, space, dataset, Ray address, one training step), exit 0 when all
pass and 2 after printing every problem; real files, a real TCP listener, a real training step."""

import io
import socket
import time

import pytest
import yaml
from conftest import ROOT
from PIL import Image

from nas.config_check import check_command

CHECKS = ["config", "space", "dataset", "ray", "training"]


def checked(capsys, config, *overrides):
    """(exit code, {check: (outcome, text)}, lines) of `check_command` on `config`."""
    code = check_command(config, overrides=list(overrides))
    lines = capsys.readouterr().out.splitlines()
    found = {line.split()[1]: (line.split()[0], line.split(None, 2)[2]) for line in lines}
    assert [line.split()[1] for line in lines] == CHECKS, lines
    return code, found, lines


def test_the_smoke_config_by_name_passes_and_trains_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, found, _ = checked(capsys, "smoke")
    assert code == 0
    assert {name: outcome for name, (outcome, _) in found.items()} == {
        "config": "ok", "space": "ok", "dataset": "ok", "ray": "skipped", "training": "skipped"}  # fmt: skip
    assert "smoke, strategy hgapso, objective synthetic, budget 200 evaluations" in found["config"][1]
    assert found["space"][1].startswith("densenet_small (")
    assert found["dataset"][1] == "digits: 10 classes, 1,797 images (train 1,294, val 144, test 359)"


@pytest.mark.full  # the first optimiser of a process imports torch._dynamo: 3-6 s alone
def test_a_training_config_runs_one_step_of_the_smallest_network(capsys):
    code, found, _ = checked(capsys, ROOT / "search_configs" / "digits_quick.yaml")
    assert code == 0
    outcome, text = found["training"]
    assert outcome == "ok" and text.startswith("one step of the smallest network (1,790 parameters) on cpu: loss ")


def write_tree(root, classes=("ant", "bee"), per_class=3):
    for c, name in enumerate(classes):
        (root / "train" / name).mkdir(parents=True)
        for i in range(per_class):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (40 * c + i, 0, 0)).save(buf, format="PNG")
            (root / "train" / name / f"{i}.png").write_bytes(buf.getvalue())


def folder_config(tmp_path, root):
    data = yaml.safe_load((ROOT / "search_configs" / "digits_quick.yaml").read_text())
    data["dataset"] = {"name": "imagefolder", "root": str(root), "cache_dir": str(tmp_path / "cache"),
                       "validation_fraction": 0.34}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_image_folder_is_counted_by_class_and_image(capsys, tmp_path):
    write_tree(tmp_path / "images")
    code, found, _ = checked(capsys, folder_config(tmp_path, tmp_path / "images"))
    assert code == 0, found
    assert found["dataset"] == ("ok", "imagefolder: 2 classes, 6 images (train 4, val 2, test 0)")
    assert found["training"][0] == "ok"


def test_missing_data_is_named_and_the_step_that_needs_it_skipped(capsys, tmp_path):
    code, found, _ = checked(capsys, folder_config(tmp_path, tmp_path / "absent"))
    assert code == 2
    outcome, text = found["dataset"]
    assert outcome == "problem" and text.startswith("dataset.root") and str(tmp_path / "absent") in text
    assert found["training"] == ("skipped", "the dataset did not load")
    assert found["config"][0] == found["space"][0] == "ok"


def test_an_invalid_config_is_one_problem_and_the_rest_skipped(capsys):
    code, found, lines = checked(capsys, "smoke", "search.pso.c1=0")
    assert code == 2
    assert found["config"] == ("problem", f"{ROOT / 'search_configs' / 'smoke.yaml'}: search.pso.c1: must be > 0, "
                                          "got 0.0 (given by --set)")  # fmt: skip
    assert [outcome for outcome, _ in found.values()] == ["problem"] + ["skipped"] * 4


def test_a_network_over_the_limits_is_a_training_problem(capsys):
    code, found, _ = checked(capsys, "digits_quick", "limits.max_params=100")
    assert code == 2
    outcome, text = found["training"]
    assert outcome == "problem" and "over limits.max_params (100)" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ray_address_that_answers_passes_and_one_that_does_not_is_a_problem_within_seconds(capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code, found, _ = checked(capsys, "smoke", f"ray.address=127.0.0.1:{port}")
    assert code == 0 and found["ray"][0] == "ok" and found["ray"][1].startswith(f"127.0.0.1:{port} answers")

    start = time.perf_counter()
    code, found, _ = checked(capsys, "smoke", f"ray.address=ray://127.0.0.1:{free_port()}")
    assert code == 2 and time.perf_counter() - start < 10
    outcome, text = found["ray"]
    assert outcome == "problem" and text.startswith("ray.address: cannot reach the Ray cluster at")

    code, found, _ = checked(capsys, "smoke", "ray.address=not an address")
    assert code == 2 and found["ray"][0] == "problem" and "expected 'auto'" in found["ray"][1]


def test_the_command_line_prints_a_line_per_check_and_exits_2_on_a_problem(nas, tmp_path):
    out = nas("config", "check", "smoke", "--set", "dataset.name=imagefolder", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stdout.splitlines()
    outcomes = [["ok", "config"], ["ok", "space"], ["problem", "dataset"], ["skipped", "ray"], ["skipped", "training"]]
    assert [line.split()[:2] for line in lines] == outcomes
    unknown = nas("config", "check", "smokey", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stdout.splitlines()[0].startswith("problem  config    no shipped config")
