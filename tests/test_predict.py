"""`nas predict` and the round trip a user makes: search, export, retrain, predict on raw files.

Through the real command line: a real (tiny) search with training, `nas export`, `nas train --full --save
--onnx` as subprocesses, then `nas predict` (in this process, through `nas.cli.main`, so that each call does not
pay for importing torch again) on the test images written as files, through TorchScript and through ONNX; the
accuracy must be the test accuracy `nas train` printed. For digits and for an imagefolder of PNGs (resized by
the dataset, so predict's resize is the training one).
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_nas
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_bbbc021 import fixture_dir  # noqa: F401  (the synthetic BBBC021 plates, a pytest fixture)

from nas.cli import main
from nas.data.digits import digits_arrays
from nas.model.preprocess import DIGITS_MAX, Preprocess

ENCODING = str(ROOT / "encodings/densenet_small.yaml")
pytestmark = pytest.mark.slow  # two tiny searches with training, exports and retrainings (about 25 CPU-s each)


def tiny_config(dataset: dict, name: str) -> dict:
    """A search that trains 2 tiny candidates for 1 epoch each."""
    return {
        "name": name,
        "seed": 0,
        "encoding": ENCODING,
        "dataset": dataset,
        "fitness": {"objective": "train", "epochs": 1, "batch_size": 32, "augment": False, "schedule": "constant"},
        "search": {"strategy": "random", "batch_size": 2, "budget": {"evaluations": 2}},
    }


def write_config(folder: Path, data: dict) -> Path:
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ok(out) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def search_export_retrain(config: Path, work: Path) -> tuple[Path, float]:
    """`nas search`, `nas export`, `nas train --full --save --onnx`; the saved folder and its test accuracy."""
    run = work / "run"
    ok(run_nas("search", str(config), "--run-dir", str(run), "--workers", "0"))
    ok(run_nas("export", str(run)))
    assert (run / "export/preprocess.json").is_file()
    save = work / "retrained"
    out = ok(run_nas("train", str(run / "export/architecture.yaml"), "--config", str(config), "--full",
                     "--save", str(save), "--onnx", "--json"))  # fmt: skip
    return save, json.loads(out)["test_accuracy"]


def predict(capsys, *args: str) -> tuple[int, str, str]:
    """`nas predict ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main(["predict", *args])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def predicted_json(capsys, model: Path, *inputs: str, fmt: str = "auto") -> dict:
    code, out, err = predict(capsys, str(model), *inputs, "--format", fmt, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert fmt == "auto" or result["format"] == fmt
    return result


def write_pngs(x: np.ndarray, y: np.ndarray, classes: list[str], folder: Path) -> None:
    """uint8 (N, C, H, W) images as PNG files in imagefolder layout: folder/<class>/<i>.png."""
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        target = folder / classes[label]
        target.mkdir(parents=True, exist_ok=True)
        pixels = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, 2)
        Image.fromarray(pixels).save(target / f"{i:04d}.png")


@pytest.fixture(scope="module")
def digits_round_trip(tmp_path_factory) -> tuple[Path, Path, float]:
    work = tmp_path_factory.mktemp("digits")
    config = write_config(work, tiny_config({"name": "digits", "train_subset": 0.3, "validation_fraction": 0.2},
                                            "digits_tiny"))  # fmt: skip
    save, accuracy = search_export_retrain(config, work)
    return config, save, accuracy


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_digits_round_trip_from_png_files_gives_the_trained_test_accuracy(digits_round_trip, fmt, tmp_path, capsys):
    config, save, accuracy = digits_round_trip
    arrays = digits_arrays(None, 1.0)
    write_pngs(arrays["x_test"], arrays["y_test"], [str(c) for c in arrays["class_names"]], tmp_path / "test")
    out = predicted_json(capsys, save, str(tmp_path / "test"), fmt=fmt)
    assert out["images"] == len(arrays["y_test"]) == 359
    assert out["accuracy"] == accuracy
    assert sum(map(sum, out["confusion_matrix"])) == 359


def test_digits_in_scikit_learn_units_and_the_config_give_the_same_accuracy(digits_round_trip, tmp_path, capsys):
    """The user's own digits (load_digits().images, floats 0-16) as a .npy array: the same predictions as the
    config's test split, and as the accuracy training printed."""
    from sklearn.datasets import load_digits

    from nas.data.digits import TEST_FRACTION, TEST_SEED
    from nas.data.splits import stratified_pick

    config, save, accuracy = digits_round_trip
    bunch = load_digits()
    test, _ = stratified_pick(bunch.target, TEST_FRACTION, TEST_SEED)
    np.save(tmp_path / "digits.npy", bunch.images[test].astype(np.float32))
    raw = predicted_json(capsys, save, str(tmp_path / "digits.npy"))
    assert raw["accuracy"] is None  # a bare array carries no labels
    from_config = predicted_json(capsys, save, str(config), fmt="torchscript")
    assert from_config["accuracy"] == accuracy
    predicted = [p["predicted"] for p in raw["predictions"]]
    assert predicted == [p["predicted"] for p in from_config["predictions"]]
    assert np.mean(np.array(predicted) == bunch.target[test]) == accuracy


def test_csv_has_a_row_per_image_with_every_class_probability(digits_round_trip, tmp_path, capsys):
    _, save, _ = digits_round_trip
    arrays = digits_arrays(None, 1.0)
    write_pngs(arrays["x_test"][:5], arrays["y_test"][:5], [str(c) for c in arrays["class_names"]], tmp_path)
    pngs = sorted(str(p) for p in tmp_path.rglob("*.png"))
    code, out, err = predict(capsys, str(save), *pngs, "--out", str(tmp_path / "p.csv"), "--batch-size", "2")
    assert code == 0, err
    assert "accuracy" in out and "true \\ predicted" in out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 5
    assert list(rows[0]) == ["path", "label", "predicted", *(f"p_{c}" for c in range(10))]
    for row in rows:
        probs = [float(row[f"p_{c}"]) for c in range(10)]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["predicted"] == str(int(np.argmax(probs)))


def test_a_colour_image_for_a_grey_model_is_one_line_exit_2(digits_round_trip, tmp_path, capsys):
    _, save, _ = digits_round_trip
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    code, _, err = predict(capsys, str(save), str(tmp_path / "rgb.png"))
    assert code == 2
    assert err.count("\n") == 1 and "3 channel(s)" in err and "takes 1" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere", "x.png"], "does not exist"),
        (["{save}", "nothing.png"], "does not exist"),
        (["{save}", "{cfg}", "{cfg}"], "only INPUT"),
        (["{save}", "{cfg}", "--batch-size", "0"], "must be >= 1"),
    ],
)
def test_bad_inputs_are_one_line_exit_2(digits_round_trip, args, message, tmp_path, capsys, monkeypatch):
    config, save, _ = digits_round_trip
    monkeypatch.chdir(tmp_path)
    code, _, err = predict(capsys, *[a.format(save=save, cfg=config) for a in args])
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def synthetic_folder(root: Path, per_class: int, seed: int) -> None:
    """12x12 colour PNGs of 3 classes (a bright red, green or blue square on noise), train/ and test/."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", per_class // 2)):
        for c, name in enumerate(["red", "green", "blue"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = rng.integers(0, 120, (12, 12, 3), dtype=np.uint8)
                top, left = rng.integers(0, 6, 2)
                img[top : top + 6, left : left + 6, c] = 255
                Image.fromarray(img).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def folder_round_trip(tmp_path_factory) -> tuple[Path, Path, Path, float]:
    work = tmp_path_factory.mktemp("folder")
    synthetic_folder(work / "images", per_class=40, seed=1)
    dataset = {"name": "imagefolder", "root": str(work / "images"), "resize": 8, "cache_dir": str(work / "cache")}
    config = write_config(work, tiny_config(dataset, "folder_tiny"))
    save, accuracy = search_export_retrain(config, work)
    return config, save, work / "images", accuracy


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_imagefolder_round_trip_from_the_12px_files_gives_the_trained_test_accuracy(folder_round_trip, fmt, capsys):
    """The test PNGs are 12x12 and the network takes 8x8: predict resizes them as training did."""
    _, save, images, accuracy = folder_round_trip
    pre = json.loads((save / "preprocess.json").read_text())
    assert (pre["input_dtype"], pre["input_size"], pre["resize"]) == ("uint8", 8, 8)
    assert pre["class_names"] == ["blue", "green", "red"] and pre["channel_order"] == ["red", "green", "blue"]
    out = predicted_json(capsys, save, str(images / "test"), fmt=fmt)
    assert out["images"] == 60
    assert out["accuracy"] == accuracy


def test_export_folder_predicts_with_its_untrained_network(folder_round_trip, capsys):
    """`nas export`'s files take the same raw units (an untrained network, so only the contract is checked)."""
    _, save, images, _ = folder_round_trip
    export = save.parent / "run/export"
    out = predicted_json(capsys, export, str(images / "test/red"), fmt="torchscript")
    assert out["images"] == 20 and out["accuracy"] is not None


@given(st.integers(0, 255))
def test_digits_units_come_back_to_the_stored_pixel_exactly(v):
    """What predict feeds a digits model (stored / (255/16), float32) is rounded back to the stored uint8 value
    inside the graph, so a PNG of the stored pixels predicts exactly like the trainer's own arrays."""
    import torch

    pre = Preprocess("digits", [], ["grey"], 8, 1, "float32", [0.0, DIGITS_MAX], None, [0.0], [1.0],
                     scale=255 / DIGITS_MAX, round=True)  # fmt: skip
    x = pre.stored_to_input(np.array([[[[v]]]], dtype=np.uint8))
    assert x.dtype == np.float32 and 0 <= x.item() <= DIGITS_MAX
    assert torch.round(torch.from_numpy(x) * pre.scale).item() == v


def test_bbbc021_plate_statistics_reproduce_the_crops_and_predict_treatments(fixture_dir, tmp_path, capsys):  # noqa: F811
    """BBBC021's per-plate DMSO normalisation lives outside the model: preprocess.json carries each plate's
    statistics, `plate_normalised_crops` with them turns a raw 16-bit field into exactly the crops trained on,
    and `nas predict` on the config gives the treatment-level test accuracy `nas train` printed."""
    import tifffile
    from test_bbbc021 import ONE_THREAD, PLATES, write_config

    from nas.data.bbbc021 import load_crops
    from nas.data.bbbc021_images import plate_normalised_crops
    from nas.data.bbbc021_metadata import load_table

    root, meta = fixture_dir / "images", fixture_dir / "metadata"
    cfg, arch = write_config(tmp_path, root, meta)
    out = run_nas("train", str(arch), "--config", str(cfg), "--full", "--epochs", "1", "--save", str(tmp_path / "m"),
                  "--json", env=ONE_THREAD)  # fmt: skip
    accuracy = json.loads(ok(out))["test_accuracy"]
    pre = json.loads((tmp_path / "m/preprocess.json").read_text())
    assert pre["dataset"] == "bbbc021" and pre["normalisation"].startswith("per-plate")
    assert pre["channel_order"] == ["Actin", "Tubulin", "DAPI"] and (pre["mean"], pre["std"]) == ([0.0] * 3, [1.0] * 3)
    assert sorted(pre["plate_statistics"]) == sorted(PLATES)

    table = load_table(meta)
    field = table.fields[0]
    raw = np.stack([tifffile.imread(root / p) for p in field.paths])
    stats = pre["plate_statistics"][field.plate]
    crops = load_crops(dataset_of(cfg)).x[:4]  # the first field's four crops
    np.testing.assert_array_equal(plate_normalised_crops(raw, stats["mean"], stats["std"], 16), crops)

    result = predicted_json(capsys, tmp_path / "m", str(cfg))
    assert result["level"] == "treatments" and result["accuracy"] == accuracy


def dataset_of(config: Path):
    from nas.config import load_config

    return load_config(config).dataset
