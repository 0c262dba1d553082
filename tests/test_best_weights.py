"""The search's best candidate, trained, exported as a model that predicts: `Result.weights`, `best/weights
.safetensors`, `nas export` writing `model.pt2` only from those weights, and `nas.predict.api` loading it.

A real tiny search on the digits (the `train` objective, one candidate), whose loop keeps the best candidate's
weights in the run directory as it finds it; its best genome is also trained again by the run's own objective
(deterministic on the CPU, so with the weights of the logged fitness) for the tests of the file format.
"""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, nas_here, run_nas

from nas.config import load_config
from nas.data.loading import load_dataset
from nas.evaluate.objective import build_objective
from nas.evaluate.result import Result
from nas.evaluate.weightsfile import capture_weights, check, load_weights
from nas.genome.architecture import load_architecture
from nas.genome.genome import Genome
from nas.genome.space import load_space
from nas.model.network import build_model
from nas.model.preprocess import RawInput, example_batch, load_preprocess
from nas.model.program import load_program, save_program
from nas.model.torchscript import save_torchscript
from nas.predict.api import load_model, predict
from nas.run.best_weights import best_weights_path, drop_weights, read_best_weights, save_best_weights
from nas.run.rundir import RunDir
from nas.run.runlog import ranked, read_results

pytestmark = pytest.mark.slow  # a tiny search with training, a second training and exports (about 20 CPU-s)

CONFIG = {
    "name": "digits_weights",
    "seed": 0,
    "encoding": str(ROOT / "encodings/densenet_small.yaml"),
    "dataset": {"name": "digits", "validation_fraction": 0.2},
    "fitness": {"objective": "train", "epochs": 2, "batch_size": 32, "augment": False, "schedule": "constant"},
    "search": {"strategy": "random", "batch_size": 1, "budget": {"evaluations": 1}},
}


def ok(out) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Result]:
    """A searched run directory and its best result, trained again (with its weights)."""
    work = tmp_path_factory.mktemp("weights")
    config_path = work / "digits_weights.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    run = work / "run"
    ok(nas_here("search", str(config_path), "--run-dir", str(run), "--workers", "0"))
    best = ranked(read_results(run / "evaluations.jsonl"))[0]
    config = load_config(run / "config.yaml")
    objective = build_objective(config, load_space(config.encoding))
    again = objective(Genome.from_dict(best.genome))
    assert again.ok and again.fitness == best.fitness, "the objective is deterministic on the CPU"
    return run, again


@pytest.fixture(scope="module")
def exported(searched, tmp_path_factory) -> tuple[Path, Path, Result, str]:
    """The run exported as the search left it: the loop kept the best's weights itself."""
    run, result = searched
    run = Path(shutil.copytree(run, tmp_path_factory.mktemp("kept") / "run"))
    assert check(best_weights_path(run).read_bytes())["key"] == result.key, "the search kept its best's weights"
    out = nas_here("export", str(run), "--onnx")
    return run, run / "export", result, ok(out)


def validation(run: Path):
    """The run's validation split in the model's input units, and its labels."""
    config = load_config(run / "config.yaml")
    data = load_dataset(config.dataset, config.seed)
    pre = load_preprocess(run / "export/preprocess.json")
    return pre.stored_to_input(data.x_val), data.y_val


def test_the_exported_model_predicts_at_the_validation_accuracy_of_the_search(exported):
    run, folder, result, stdout = exported
    assert sorted(p.name for p in folder.iterdir()) == [
        "architecture.yaml",
        "model.onnx",
        "model.pt2",
        "preprocess.json",
    ]
    assert f"nas predict {folder}" in stdout
    x, y = validation(run)
    probs = load_model(folder)(x)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == y))
    assert accuracy == pytest.approx(result.fitness, abs=1.5 / len(y))
    assert accuracy > 0.5, "ten classes: chance is 0.1"
    labels = predict(folder, x[:3])
    names = load_preprocess(folder / "preprocess.json").class_names
    assert [name for name, _ in labels] == [names[i] for i in np.argmax(probs[:3], axis=1)]
    assert all(0.1 < p <= 1.0 for _, p in labels)


def test_preprocess_json_says_the_weights_come_from_the_search(exported):
    _, folder, result, _ = exported
    weights = json.loads((folder / "preprocess.json").read_text())["weights"]
    assert weights == {"source": "search", "epochs": CONFIG["fitness"]["epochs"], "val_accuracy": result.fitness}


def test_nas_predict_reads_model_pt2(exported, tmp_path):
    run, folder, result, _ = exported
    x, y = validation(run)
    np.save(tmp_path / "val.npy", x)
    out = json.loads(ok(run_nas("predict", str(folder), str(tmp_path / "val.npy"), "--json")))
    assert out["format"] == "pt2" and out["model"].endswith("model.pt2")
    predicted = np.array([p["predicted"] for p in out["predictions"]])
    assert np.mean(predicted == y) == pytest.approx(result.fitness, abs=1.5 / len(y))


def test_without_kept_weights_export_writes_no_model(searched, tmp_path):
    """A search that kept no weights: the architecture alone, one warning line, exit 0; --onnx exit 2."""
    run = Path(shutil.copytree(searched[0], tmp_path / "run"))
    best_weights_path(run).unlink(missing_ok=True)
    out = run_nas("export", str(run), "--out", str(tmp_path / "e"))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["architecture.yaml"]
    warnings = [line for line in out.stderr.splitlines() if "no model file written" in line]
    assert len(warnings) == 1 and "nas train --full" in warnings[0] and "kept no trained weights" in warnings[0]
    out = run_nas("export", str(run), "--onnx", "--out", str(tmp_path / "o"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--onnx" in out.stderr
    assert not (tmp_path / "o").exists()


def test_weights_of_another_candidate_or_damaged_give_no_model(exported, tmp_path):
    run, _, result, _ = exported
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    blob = bytearray(best_weights_path(copy).read_bytes())
    blob[-5] ^= 0x40  # one flipped bit in the last tensor
    best_weights_path(copy).write_bytes(bytes(blob))
    out = run_nas("export", str(copy), "--out", str(tmp_path / "damaged"))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "damaged").iterdir()) == ["architecture.yaml"]
    assert [line for line in out.stderr.splitlines() if "damaged" in line and "no model file written" in line]

    model = build_model(load_architecture(copy / "best/architecture.yaml"))
    other = capture_weights(model, "f" * 64, 2, 0.5)
    best_weights_path(copy).write_bytes(other)
    assert read_best_weights(copy, result.key)[2].startswith("the run kept trained weights of another candidate")
    best_weights_path(copy).write_bytes(b"not a weights file")
    assert read_best_weights(copy, result.key)[0] is None


def test_save_best_weights_keeps_only_the_result_s_own_intact_weights(exported, tmp_path):
    _, _, result, _ = exported
    run = RunDir(tmp_path)
    save_best_weights(run, Result(key="a" * 64, genome={}, status="ok", fitness=0.5, weights=result.weights))
    save_best_weights(run, Result(key="b" * 64, genome={}, status="ok", fitness=0.5))
    assert not best_weights_path(tmp_path).exists(), "weights of another key, or none, are never written"
    save_best_weights(run, result)
    assert check(best_weights_path(tmp_path).read_bytes())["key"] == result.key
    results = [Result.from_dict(result.to_dict()), dataclasses.replace(result)]
    results[0].weights = b"x"
    drop_weights(results)
    assert all(r.weights is None for r in results)
    assert "weights" not in result.to_dict() and "weights" not in Result.from_dict(result.to_dict()).to_dict()


def test_a_pt2_round_trip_equals_the_network_and_an_old_model_ts_still_loads(exported, tmp_path):
    run, folder, result, _ = exported
    arch = load_architecture(folder / "architecture.yaml")
    pre = load_preprocess(folder / "preprocess.json")
    network = build_model(arch)
    load_weights(result.weights, network)
    network.eval()
    x = example_batch(pre, batch=5, seed=4)
    with torch.no_grad():
        want = RawInput(network, pre)(x)
        torch.testing.assert_close(load_program(folder / "model.pt2")(x), want, rtol=0, atol=1e-5)
        save_program(network, pre, tmp_path / "model.pt2")
        torch.testing.assert_close(load_program(tmp_path / "model.pt2")(x[:1]), want[:1], rtol=0, atol=1e-5)
    onnx = load_model(folder, "onnx")
    np.testing.assert_allclose(onnx(x.numpy()), torch.softmax(want, 1).numpy(), atol=1e-5)
    old = tmp_path / "old"
    old.mkdir()
    save_torchscript(network, pre, old / "model.ts")
    shutil.copy(folder / "preprocess.json", old / "preprocess.json")
    (old / "preprocess.json").write_text(  # a preprocess.json written before `weights` was recorded
        json.dumps({k: v for k, v in json.loads((old / "preprocess.json").read_text()).items() if k != "weights"})
    )
    model = load_model(old)
    assert model.file.format == "torchscript"
    np.testing.assert_allclose(model(x.numpy()), torch.softmax(want, 1).numpy(), atol=1e-5)
