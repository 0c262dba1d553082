"""`nas predict` and the round trip a user makes: search, export, retrain, predict on raw files.

Through the real command line, called in this process (`nas.cli.main`, so that each call does not pay for a
process start and a torch import): a real (tiny) search with training, `nas export`, `nas train --full --save
--onnx`, then `nas predict` on the test images written as files, through the exported program and ONNX; the
accuracy must be the test accuracy `nas train` printed. For digits and for an imagefolder of PNGs (resized by
the dataset, so predict's resize is the training one).
"""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, nas_here, run_nas
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from test_bbbc021 import fixture_dir  # noqa: F401  (the synthetic BBBC021 plates, a pytest fixture)

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
    ok(nas_here("search", str(config), "--run-dir", str(run), "--workers", "0"))
    ok(nas_here("export", str(run)))
    assert (run / "export/architecture.yaml").is_file()
    save = work / "retrained"
    out = ok(nas_here("train", str(run / "export/architecture.yaml"), "--config", str(config), "--full",
                     "--save", str(save), "--onnx", "--json"))  # fmt: skip
    return save, json.loads(out)["test_accuracy"]


def predict(*args: str) -> tuple[int, str, str]:
    """`nas predict ARGS` in this process: (exit code, stdout, stderr)."""
    out = nas_here("predict", *args)
    return out.returncode, out.stdout, out.stderr


def predicted_json(model: Path, *inputs: str, fmt: str = "auto") -> dict:
    code, out, err = predict(str(model), *inputs, "--format", fmt, "--json")
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


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_digits_round_trip_from_png_files_gives_the_trained_test_accuracy(digits_round_trip, fmt, tmp_path):
    config, save, accuracy = digits_round_trip
    arrays = digits_arrays(None, 1.0)
    write_pngs(arrays["x_test"], arrays["y_test"], [str(c) for c in arrays["class_names"]], tmp_path / "test")
    out = predicted_json(save, str(tmp_path / "test"), fmt=fmt)
    assert out["images"] == len(arrays["y_test"]) == 359
    assert out["accuracy"] == accuracy
    assert sum(map(sum, out["confusion_matrix"])) == 359


def test_digits_in_scikit_learn_units_and_the_config_give_the_same_accuracy(digits_round_trip, tmp_path):
    """The user's own digits (load_digits().images, floats 0-16) as a .npy array: the same predictions as the
    config's test split, and as the accuracy training printed."""
    from sklearn.datasets import load_digits

    from nas.data.digits import TEST_FRACTION, TEST_SEED
    from nas.data.splits import stratified_pick

    config, save, accuracy = digits_round_trip
    bunch = load_digits()
    test, _ = stratified_pick(bunch.target, TEST_FRACTION, TEST_SEED)
    np.save(tmp_path / "digits.npy", bunch.images[test].astype(np.float32))
    raw = predicted_json(save, str(tmp_path / "digits.npy"))
    assert raw["accuracy"] is None  # a bare array carries no labels
    from_config = predicted_json(save, str(config), fmt="pt2")
    assert from_config["accuracy"] == accuracy
    predicted = [p["predicted"] for p in raw["predictions"]]
    assert predicted == [p["predicted"] for p in from_config["predictions"]]
    assert np.mean(np.array(predicted) == bunch.target[test]) == accuracy


def test_csv_has_a_row_per_image_with_every_class_probability(digits_round_trip, tmp_path):
    _, save, _ = digits_round_trip
    arrays = digits_arrays(None, 1.0)
    write_pngs(arrays["x_test"][:5], arrays["y_test"][:5], [str(c) for c in arrays["class_names"]], tmp_path)
    pngs = sorted(str(p) for p in tmp_path.rglob("*.png"))
    code, out, err = predict(str(save), *pngs, "--out", str(tmp_path / "p.csv"), "--batch-size", "2")
    assert code == 0, err
    assert "accuracy" in out and "true \\ predicted" in out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 5
    assert list(rows[0]) == ["path", "label", "predicted", *(f"p_{c}" for c in range(10))]
    for row in rows:
        probs = [float(row[f"p_{c}"]) for c in range(10)]
        assert abs(sum(probs) - 1) < 1e-4
        assert row["predicted"] == str(int(np.argmax(probs)))


def test_a_colour_image_for_a_grey_model_is_one_line_exit_2(digits_round_trip, tmp_path):
    _, save, _ = digits_round_trip
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    code, _, err = predict(str(save), str(tmp_path / "rgb.png"))
    assert code == 2
    assert err.count("\n") == 1 and "3 channel(s)" in err and "takes 1" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere", "x.png"], "does not exist"),
        (["{save}", "nothing.png"], "does not exist"),
        (["{save}", "{cfg}", "{cfg}"], "only INPUT"),
        (["{save}", "{cfg}", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_inputs_are_one_line_exit_2(digits_round_trip, args, message, tmp_path, monkeypatch):
    config, save, _ = digits_round_trip
    monkeypatch.chdir(tmp_path)
    code, _, err = predict(*[a.format(save=save, cfg=config) for a in args])
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def png_bomb(path: Path, width: int, height: int) -> None:
    """A PNG that declares `width` x `height` pixels in its header and holds none (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))  # fmt: skip


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda t: os.mkfifo(t / "pipe.png"), ["{save}", "pipe.png"],
         "pipe.png is a FIFO, not an image file or folder"),
        (lambda t: os.symlink("/dev/zero", t / "zero.png"), ["{save}", "zero.png"],
         "zero.png is a character device, not an image file or folder"),
        (lambda t: os.symlink(t / "nowhere.png", t / "gone.png"), ["{save}", "gone.png"],
         "gone.png is a broken symbolic link"),
        (lambda t: os.mkfifo(t / "pipe.yaml"), ["{save}", "pipe.yaml"], "pipe.yaml is a FIFO, not a config"),
        (lambda t: os.mkfifo(t / "model"), ["model", "x.png"], "model is a FIFO, not a model folder"),
        (lambda t: (t / "hostname").write_text("x"), ["{save}", "{cfg}", "--out", "hostname/x.csv"],
         "--out hostname/x.csv: hostname is a file, not a folder"),
        (lambda t: (t / "out").mkdir(), ["{save}", "{cfg}", "--out", "out"], "--out out is a folder"),
        (lambda t: png_bomb(t / "bomb.png", 20_000, 20_000), ["{save}", "bomb.png"],
         "bomb.png: image of 400,000,000 pixels (20000x20000) exceeds the limit"),
    ],
)  # fmt: skip
def test_what_an_input_is_not_is_said(digits_round_trip, make, args, message, tmp_path, monkeypatch):
    """A FIFO, a device, a broken link, a file where --out needs a folder, a decompression bomb: each named as
    what it is (never "does not exist" or a dataset key), before anything is predicted or written."""
    config, save, _ = digits_round_trip
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    code, out, err = predict(*[a.format(save=save, cfg=config) for a in args])
    assert code == 2, err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert "dataset." not in err and not out


def test_a_model_ts_without_its_contract_is_checked_by_its_buffers_and_a_dry_run(digits_round_trip, tmp_path):
    """A model.ts saved before it carried nas_input.json: its channels come from the normalisation buffer, its
    outputs from the classifier, and a dry run; a preprocess.json that disagrees is one line naming the field."""
    import shutil
    import warnings

    import torch

    from nas.genome.architecture import load_architecture
    from nas.model.network import build_model
    from nas.model.preprocess import load_preprocess
    from nas.model.torchscript import to_torchscript

    _, save, _ = digits_round_trip
    shutil.copy(save / "preprocess.json", tmp_path / "preprocess.json")
    network = build_model(load_architecture(save / "architecture.yaml"))
    network.load_state_dict(torch.load(save / "weights.pt", weights_only=True))
    with warnings.catch_warnings():  # torch.jit.save is deprecated: this writes the file an earlier version wrote
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(to_torchscript(network, load_preprocess(save / "preprocess.json")), str(tmp_path / "model.ts"))
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), dtype=np.float32))
    good = json.loads((tmp_path / "preprocess.json").read_text())
    assert predict(str(tmp_path), str(tmp_path / "x.npy"))[0] == 0
    changes = [
        ({"class_names": [str(c) for c in range(9)]}, "class_names: 9 names, but model.ts gives 10 outputs"),
        ({"in_channels": 3, "mean": [0.0] * 3, "std": [1.0] * 3, "channel_order": ["r", "g", "b"]},
         "in_channels: 3, but model.ts takes 1 channel(s)"),
    ]  # fmt: skip
    for change, message in changes:
        (tmp_path / "preprocess.json").write_text(json.dumps({**good, **change}))
        code, _, err = predict(str(tmp_path), str(tmp_path / "x.npy"))
        assert code == 2 and err.count("\n") == 1 and message in err, err


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=30), min_size=1,
             max_size=6, unique=True),
    st.data(),
)  # fmt: skip
def test_every_confusion_matrix_label_sits_over_its_column(names, data):
    """Class names short and long, counts of any width: each header label ends where its column's counts end,
    and each row starts with its class name."""
    import re

    from nas.predict.command import matrix_text

    n = len(names)
    matrix = data.draw(st.lists(st.lists(st.integers(0, 10**7), min_size=n, max_size=n), min_size=n, max_size=n))
    lines = matrix_text(matrix, names).splitlines()
    assert lines[0].startswith("true \\ predicted") and len(lines) == n + 1
    labels = list(re.finditer(r"\S+", lines[0]))[-n:]  # names hold no spaces; the corner label does
    assert [m.group() for m in labels] == names
    for name, values, line in zip(names, matrix, lines[1:], strict=True):
        cells = list(re.finditer(r"\S+", line))
        assert cells[0].start() == 0 and cells[0].group() == name
        assert [m.group() for m in cells[1:]] == [str(v) for v in values]
        assert [m.end() for m in cells[1:]] == [m.end() for m in labels], (lines[0], line)


@pytest.mark.parametrize("count, level, text", [(8, "treatments", "8 treatments"), (1, "treatments", "1 treatment"),
                                                (12, "wells", "12 wells"), (359, "image", "359 images"),
                                                (1, "image", "1 image")])  # fmt: skip
def test_counts_are_in_plain_english(count, level, text):
    from nas.predict.command import counted

    assert counted(count, level) == text


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


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_imagefolder_round_trip_from_the_12px_files_gives_the_trained_test_accuracy(folder_round_trip, fmt):
    """The test PNGs are 12x12 and the network takes 8x8: predict resizes them as training did."""
    _, save, images, accuracy = folder_round_trip
    pre = json.loads((save / "preprocess.json").read_text())
    assert (pre["input_dtype"], pre["input_size"], pre["resize"]) == ("uint8", 8, 8)
    assert pre["class_names"] == ["blue", "green", "red"] and pre["channel_order"] == ["red", "green", "blue"]
    out = predicted_json(save, str(images / "test"), fmt=fmt)
    assert out["images"] == 60
    assert out["accuracy"] == accuracy


def test_a_config_split_names_each_test_file(folder_round_trip, tmp_path):
    """On an imagefolder config's test split, each CSV row carries its file (after `path`, before `label`), and
    that file's class folder is the row's label."""
    config, save, images, _ = folder_round_trip
    code, _, err = predict(str(save), str(config), "--out", str(tmp_path / "p.csv"))
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert list(rows[0])[:4] == ["path", "file", "label", "predicted"] and len(rows) == 60
    assert [r["path"] for r in rows] == [f"{config.name}:test[{i}]" for i in range(60)]
    for row in rows:
        file = Path(row["file"])
        assert file.is_file() and file.is_relative_to(images / "test") and file.parent.name == row["label"]
    assert len({r["file"] for r in rows}) == 60


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


def test_bbbc021_plate_statistics_reproduce_the_crops_and_predict_treatments(fixture_dir, tmp_path):  # noqa: F811
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

    result = predicted_json(tmp_path / "m", str(cfg))
    assert result["level"] == "treatments" and result["accuracy"] == accuracy

    code, out, err = predict(str(tmp_path / "m"), str(cfg), "--out", str(tmp_path / "p.csv"))
    assert code == 0, err
    treatments = result["count"]
    assert f"over {treatments} treatment{'s' if treatments != 1 else ''}\n" in out and "treatmentss" not in out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    columns = ["path", "compound", "concentration", "plate", "well", "replicate", "image", "crop", "label"]
    assert list(rows[0])[: len(columns) + 1] == [*columns, "predicted"]
    fields = {(f.compound, f.concentration, f.plate, f.well, f.replicate, f.paths[2]): f for f in table.fields}
    for row in rows:
        key = (row["compound"], float(row["concentration"]), row["plate"], row["well"], int(row["replicate"]),
               row["image"])  # fmt: skip
        assert key in fields and fields[key].moa == row["label"] and row["crop"] in {"0", "1", "2", "3"}
    test_compounds = {row["compound"] for row in rows}
    assert len(test_compounds) == 1  # holdout_compounds: 1
    assert len(rows) == 4 * sum(f.compound in test_compounds for f in table.fields)
    assert {p["compound"] for p in result["predictions"]} == test_compounds


def dataset_of(config: Path):
    from nas.config import load_config

    return load_config(config).dataset
