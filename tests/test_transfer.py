"""The transfer arm: backbones load weights files and fine-tune, bad weights files are refused through the real
CLI, and cross-validation runs through the very fold loop and aggregation the NAS arm uses.

The networks are ImageNet-sized (24-56M parameters), so everything trains on a handful of tiny images at a
small input size for one epoch of one or two steps.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT
from PIL import Image
from test_bbbc014 import write_plate
from torch import nn

from nas.config import load_config, parse_config
from nas.data.aggregate import aggregate
from nas.data.dataset import ImageData
from nas.data.folds import Fold, iterate_folds
from nas.errors import UserError
from nas.evaluate import protocols
from nas.evaluate.trainer import train_model
from nas.transfer import arm as arm_module
from nas.transfer.backbones import BACKBONES
from nas.transfer.classifier import build_classifier
from nas.transfer.plan import plan_runs
from nas.transfer.recipe import balanced_class_weights, fitness_settings
from nas.transfer.results import load_baseline_results
from nas.transfer.weights import check_weights, expected_shapes, load_checked, read_state_dict

# InceptionV3's stem needs at least 75 px; every backbone trains at this size here.
SMALL = 75


def tiny_data(n_train: int = 8, n_test: int = 4, size: int = 20, channels: int = 1, seed: int = 0) -> ImageData:
    """Two classes a tiny network can tell apart: bright or dark uint8 images."""
    rng = np.random.default_rng(seed)
    y_train, y_test = np.arange(n_train) % 2, np.arange(n_test) % 2

    def images(y: np.ndarray) -> np.ndarray:
        noise = rng.integers(0, 60, size=(len(y), channels, size, size))
        return (noise + 150 * y[:, None, None, None]).astype(np.uint8)

    return ImageData(
        images(y_train), y_train, None, None, images(y_test), y_test, 2, ["dark", "bright"],
        mean=(100.0,) * channels, std=(60.0,) * channels,
    )  # fmt: skip


def body_keys(backbone, state) -> list[str]:
    return [k for k in state if not k.startswith(backbone.ignored_prefixes)]


@pytest.mark.parametrize("name", ["resnet50", "inception_v3", "inception_resnet_v2"])
def test_backbone_loads_its_weights_file_and_fine_tunes_an_epoch(name, tmp_path):
    backbone = BACKBONES.get(name)
    torch.manual_seed(1)
    source = backbone.build(True)
    path = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), path)
    saved = source.state_dict()
    del source

    model = build_classifier(name, 2, 1, state=load_checked(backbone, path), input_size=SMALL)
    loaded = model.net.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in body_keys(backbone, saved))
    head = [p for n, p in model.net.named_parameters() if n.startswith(backbone.ignored_prefixes)]
    assert head and all(p.shape[0] == 2 for p in head if p.dim() == 2)
    assert all(p.requires_grad for p in model.parameters())

    before = {k: v.clone() for k, v in model.net.state_dict().items() if v.is_floating_point()}
    data = tiny_data(n_train=4, n_test=2)  # one step of 4 images
    section = parse_config({"baseline": {"model": name, "pretrained": False, "batch_size": 4}}).baseline
    report = train_model(model, data, fitness_settings(section, epochs=1), seed=0, full=True, evaluate=("test",),
                         augmentation="dihedral", class_weights=balanced_class_weights(data.y_train, 2),
                         keep_probs=True, device="cpu")  # fmt: skip
    assert np.isfinite(report.train_loss)
    probs = report.probs["test"]
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    after = model.net.state_dict()
    assert any(not torch.equal(before[k], after[k].cpu()) for k in body_keys(backbone, before))


def test_input_adaptation_resizes_on_the_fly_and_maps_channels():
    with torch.device("meta"):
        model = build_classifier("resnet50", 3, 2, state=None, input_size=40)
    x = torch.randn(2, 2, 12, 12)
    adapted = model.adapt(x)
    assert adapted.shape == (2, 3, 40, 40)
    assert torch.count_nonzero(adapted[:, 2]) == 0
    grey = model.adapt(torch.randn(1, 1, 40, 40))
    assert torch.equal(grey[:, 0], grey[:, 2])
    with pytest.raises(UserError, match="4 channels"):
        build_classifier("resnet50", 3, 4, state=None)


def test_shape_mismatch_and_pickled_module_are_refused(tmp_path):
    backbone = BACKBONES.get("resnet50")
    state = {k: torch.zeros(s, device="meta") for k, s in expected_shapes(backbone).items()}
    check_weights(state, backbone, "ok.pth")
    state["layer1.0.conv1.weight"] = torch.zeros(1, device="meta")
    with pytest.raises(UserError, match=r"bad\.pth: not ResNet50 weights: layer1\.0\.conv1\.weight has shape"):
        check_weights(state, backbone, "bad.pth")
    # A head for another number of classes (or none) is fine: it is replaced anyway.
    del state["layer1.0.conv1.weight"], state["fc.weight"]
    with pytest.raises(UserError, match="1 missing keys"):
        check_weights(state, backbone, "bad.pth")
    pickled = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), pickled)
    with pytest.raises(UserError, match="holds objects other than tensors"):
        read_state_dict(pickled)
    (tmp_path / "hub.safetensors").write_bytes(b"x")
    with pytest.raises(UserError, match="convert it once"):
        read_state_dict(tmp_path / "hub.safetensors")
    wrapped = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {"module.fc.bias": torch.ones(2)}}, wrapped)
    assert list(read_state_dict(wrapped)) == ["fc.bias"]


def test_pretrained_needs_a_file_or_an_explicit_false(tmp_path):
    def plan(baseline: dict):
        return plan_runs(parse_config({"baseline": baseline}, tmp_path), check_files=False)

    with pytest.raises(UserError) as err:
        plan({"model": "resnet50"})
    assert err.value.key == "baseline.weights"
    with pytest.raises(UserError) as err:
        plan({"pretrained": False, "weights": "w.pth"})
    assert err.value.key == "baseline.pretrained"
    with pytest.raises(UserError, match=r"\{model\} placeholder"):
        plan({"models": ["resnet50", "inception_v3"], "weights": "w.pth"})
    runs = plan({"models": ["resnet50", "inception_v3"], "weights": "w/{model}-imagenet.pth"})
    assert [(r.model, Path(r.weights).name, r.input_size, r.init) for r in runs] == [
        ("resnet50", "resnet50-imagenet.pth", 224, "pretrained"),
        ("inception_v3", "inception_v3-imagenet.pth", 299, "pretrained"),
    ]
    assert [r.init for r in plan({"pretrained": False, "model": "inception_v3"})] == ["from-scratch"]
    with pytest.raises(UserError, match="InceptionResNetV2 needs at least 75 px") as err:
        plan({"pretrained": False, "models": ["resnet50", "inception_resnet_v2"], "input_size": 64})
    assert err.value.key == "baseline.input_size"


def write_config(folder: Path, baseline: str) -> Path:
    path = folder / "cfg.yaml"
    path.write_text(f"name: tiny\ndataset: {{name: digits}}\nbaseline: {baseline}\n")
    return path


def truncated_file(folder: Path) -> Path:
    path = folder / "truncated.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def wrong_architecture_file(folder: Path) -> Path:
    path = folder / "other.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, path)
    return path


@pytest.mark.parametrize(
    "make_file, expected",
    [
        (lambda d: d / "absent.pth", "weights file not found"),
        (wrong_architecture_file, "not InceptionV3 weights: "),
        (truncated_file, "not a readable weights file"),
    ],
    ids=["missing", "wrong-architecture", "truncated"],
)
def test_bad_weights_file_exits_2_naming_it(make_file, expected, nas, tmp_path):
    weights = make_file(tmp_path)
    config = write_config(tmp_path, f"{{model: inception_v3, weights: {weights.name}}}")
    done = nas("baseline", str(config), "--run-dir", str(tmp_path / "run"), timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "baseline.weights" in lines[0] and str(weights) in lines[0] and expected in lines[0]
    if not weights.exists():
        assert "python -c " in lines[0] and "baseline.pretrained: false" in lines[0], "how to make it, or go without"
    assert not (tmp_path / "run").exists()


def write_image_folder(root: Path) -> None:
    data = tiny_data(n_train=8, n_test=4, size=16)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            folder = root / split / data.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0]).save(folder / f"{i}.png")


def test_from_scratch_run_through_the_cli_is_labelled_everywhere(nas, tmp_path):
    write_image_folder(tmp_path / "images")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "name: tiny\ndataset: {name: imagefolder, root: images, cache_dir: cache}\n"
        "baseline: {model: resnet50, pretrained: false, input_size: 32, epochs: 3, batch_size: 4, device: cpu}\n"
    )
    run_dir = tmp_path / "run"
    done = nas("baseline", str(config), "--run-dir", str(run_dir), "--epochs", "1", "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    (result,) = summary["results"]
    assert (result["init"], result["label"], result["epochs"]) == ("from-scratch", "ResNet50 (from-scratch)", 1)
    assert result["protocol"] == "train-test" and result["params"] > 20_000_000
    folder = run_dir / "baseline" / "resnet50"
    assert json.loads((folder / "metrics.json").read_text())["accuracy"] == result["accuracy"]
    lines = (folder / "predictions.csv").read_text().splitlines()
    assert lines[0].startswith("arm,model,init,index,true,predicted,correct")
    assert len(lines) == 5 and all(",from-scratch," in line for line in lines[1:])
    correct = [line.split(",")[6] == "True" for line in lines[1:]]
    assert result["accuracy"] == pytest.approx(np.mean(correct))
    (loaded,) = load_baseline_results(run_dir)
    assert loaded["label"] == "ResNet50 (from-scratch)" and loaded["paper_accuracy"] is None
    as_run = yaml.safe_load((run_dir / "baseline" / "config.yaml").read_text())
    assert as_run["baseline"]["epochs"] == 1, "the config as run: --epochs 1 in place of the file's 3"
    assert_predict_runs_the_saved_network(nas, folder, config, tmp_path / "images" / "test", result)


def assert_predict_runs_the_saved_network(nas, folder: Path, config: Path, images: Path, result: dict) -> None:
    """The backbone folder is a model folder: `nas predict` runs it on the config's test split with the very
    probabilities of predictions.csv, and on the image files with the accuracy the baseline reported."""
    assert result["model_file"] == "model.pt2" and (folder / "model.pt2").is_file()
    pre = json.loads((folder / "preprocess.json").read_text())
    assert pre["weights"] == {"source": "transfer", "epochs": 1, "test_accuracy": result["accuracy"]}
    assert pre["input_size"] == 16 and any("ResNet50 from random weights" in note for note in pre["notes"])
    done = nas("predict", str(folder), str(config), "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    predicted = json.loads(done.stdout)
    assert predicted["accuracy"] == result["accuracy"]
    with (folder / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    expected = np.array([[float(r[f"p_{c}"]) for c in result["class_names"]] for r in rows])
    got = np.array([p["probabilities"] for p in predicted["predictions"]])
    assert np.allclose(got, expected, atol=1e-5), "the model file computes what the trainer scored"
    done = nas("predict", str(folder), str(images), "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accuracy"] == result["accuracy"]


def grouped_fold(name: str, seed: int) -> Fold:
    """A fold whose 4 test images form 2 treatments of 2 images each (treatment id = label)."""
    data = tiny_data(seed=seed)
    data.test_groups = np.stack([np.arange(4), data.y_test], axis=1)
    table = {"compound": np.array([f"{name}-{y}" for y in data.y_test]), "image": np.arange(4)}
    return Fold(name, data, table, ("compound",), level="treatment")


def test_folds_run_through_the_shared_protocol_code(tmp_path):
    """The real fold loop of a dataset with a protocol (BBBC014: train on one cell line, test on the other,
    then the reverse), on a synthetic plate written to disk: nothing of the loop is stubbed. Each fold's test
    images are predicted, aggregated to wells by the same code as the NAS arm, and the reported accuracy is
    the mean over the wells of both folds."""
    assert arm_module.cross_validate is protocols.cross_validate
    assert arm_module.iterate_folds.__module__ == "nas.data.folds"
    root = write_plate(tmp_path / "BBBC014_v1_images")
    dataset = {"name": "bbbc014", "root": str(root), "cache_dir": str(tmp_path / "cache"), "train_cell_line": "MCF7"}
    baseline = {"pretrained": False, "input_size": 16, "epochs": 1, "batch_size": 128}
    config = parse_config({"dataset": dataset, "baseline": baseline, "fitness": {"device": "cpu"}}, tmp_path)
    (run,) = plan_runs(config)
    metrics, tables, network = arm_module.run_arm(config, run, epochs=None, progress=False)
    assert network is None, "each fold trains its own network: none is the whole dataset's"
    assert (metrics["protocol"], metrics["metric"]) == ("cell-line", "well_accuracy")
    assert [f["name"] for f in metrics["folds"]] == ["MCF7->A549", "A549->MCF7"]
    images, wells = tables["predictions"], tables["wells"]
    folds = list(iterate_folds(config.dataset, config.seed))
    assert len(images) == sum(len(f.data.y_test) for f in folds), "every test image of both folds, once"
    # the labelled wells (columns 1-4 positive, 9-12 negative) of each line's 4 rows, each once, in its fold
    assert len(wells) == 64 and len({(r["fold"], r["well"]) for r in wells}) == 64
    for fold in folds:
        mine = [r for r in images if r["fold"] == fold.name]
        probs = np.array([[r[f"p_{c}"] for c in fold.data.class_names] for r in mine])
        agg, _ = aggregate(probs, fold.data.y_test, fold.data.test_groups, reduce=fold.data.group_reduce)
        theirs = np.array([[r[f"p_{c}"] for c in fold.data.class_names] for r in wells if r["fold"] == fold.name])
        assert np.allclose(agg, theirs, atol=1e-5), fold.name
    assert metrics["accuracy"] == pytest.approx(np.mean([r["correct"] for r in wells]))


@pytest.mark.parametrize("name", ["bbbc021", "bbbc014", "cifar10"])
def test_shipped_configs_run_the_three_backbones(name):
    config = load_config(ROOT / "search_configs" / f"{name}_transfer.yaml")
    runs = plan_runs(config, check_files=False)
    assert [r.model for r in runs] == ["resnet50", "inception_v3", "inception_resnet_v2"]
    assert [r.input_size for r in runs] == [224, 299, 299]
    assert all(Path(r.weights).name == f"{r.model}-imagenet.pth" and r.init == "pretrained" for r in runs)
