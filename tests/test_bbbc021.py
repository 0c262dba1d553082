"""BBBC021: the real metadata's counts and folds, and the whole pipeline on a synthetic plate subset.

The synthetic fixture takes the rows of two real Week1 plates from the shared metadata and writes tiny 16-bit
TIFFs (64x80) at exactly the paths those rows name. Every plate has its own intensity offset and gain, and each
MoA class raises or lowers one channel by two noise standard deviations: a pipeline that normalises by the right
plate's DMSO fields sees the same class signal on every plate; one that mixes plates up does not.
"""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from conftest import ROOT, SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.config import DatasetConfig
from nas.data.bbbc021 import holdout_split, loco_splits, pick_holdout
from nas.data.bbbc021_images import combine_moments
from nas.data.bbbc021_metadata import CHANNELS, IMAGE_CSV, MOA_CSV, load_table

METADATA = SHARED_DATA / "bbbc021"
PLATES = ("Week1_22123", "Week1_22361")
SHAPE = (64, 80)
NOISE = 100.0


def needs_metadata() -> None:
    if not (METADATA / IMAGE_CSV).is_file():
        pytest.skip(f"real BBBC021 metadata {METADATA} is absent (it is present in CI)")


# ---------------------------------------------------------------- real metadata


def test_real_metadata_counts(shared_data, nas, tmp_path):
    needs_metadata()
    table = load_table(METADATA)
    assert table.joined == 3848
    assert table.joined - len(table.dmso) == 2528
    assert (len(table.fields), len(table.treatments), len(table.compounds), len(table.classes)) == (1208, 103, 38, 12)
    shipped = yaml.safe_load((ROOT / "search_configs/bbbc021_hgapso.yaml").read_text())
    shipped["encoding"] = str(ROOT / "encodings/densenet_cifar.yaml")
    shipped["dataset"]["metadata"] = str(METADATA)  # the shipped config, pointed at the real metadata
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(shipped))
    out = nas("data", "summary", str(cfg), "--json")
    summary = json.loads(out.stdout)  # printed whole, though its images are not there
    assert [summary[k] for k in ("images", "treatments", "compounds", "classes", "folds")] == [1208, 103, 38, 12, 38]
    # the 1,208 fields and the 1,176 DMSO fields of their 49 plates, 3 channel files each: none under the
    # placeholder root, which is what `nas search` would stop on, so the summary exits 2 saying so
    assert (summary["image_files"], summary["image_files_present"], summary["image_files_missing"]) == (7152, 0, 7152)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "dataset.root: 7,152 of 7,152 BBBC021 image files missing" in out.stderr
    assert out.stderr.strip().endswith(summary["first_missing_file"])


def test_taxol_filter_keeps_week1_d03_to_d05_only(shared_data):
    needs_metadata()
    taxol = [f for f in load_table(METADATA).fields if f.compound == "taxol"]
    assert len(taxol) == 36
    assert {f.well for f in taxol} == {"D03", "D04", "D05"}
    assert {f.plate.split("_")[0] for f in taxol} == {"Week1"}  # no Week10 plate slips through a prefix test
    assert {f.concentration for f in taxol} == {0.3, 1.0, 3.0} and len({f.plate for f in taxol}) == 3


def test_loco_folds_never_share_a_compound(shared_data):
    needs_metadata()
    table = load_table(METADATA)
    folds = list(loco_splits(table))
    assert len(folds) == 38
    seen = np.zeros(len(table.fields), dtype=int)
    for compound, test in folds:
        train_compounds = {f.compound for f, t in zip(table.fields, test, strict=True) if not t}
        test_compounds = {f.compound for f, t in zip(table.fields, test, strict=True) if t}
        assert test_compounds == {compound} and compound not in train_compounds
        seen += test
    assert (seen == 1).all()  # every field, hence every treatment, is tested exactly once


def test_holdout_split_on_real_metadata(shared_data):
    needs_metadata()
    table = load_table(METADATA)
    classes = {f.compound: f.moa for f in table.fields}
    val0, test0 = holdout_split(table, 3, seed=0)
    val1, test1 = holdout_split(table, 3, seed=1)
    assert test0 == test1  # the test compounds are the task's, not the run's
    assert not set(val0) & set(test0) and len(set(val0)) == 3
    assert len({classes[c] for c in val0}) == 3  # distinct MoA classes where possible
    train = set(classes) - set(val0) - set(test0)
    assert {classes[c] for c in train} == set(classes.values())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=6),
    n=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_pick_holdout_keeps_a_training_compound_per_class(sizes, n, seed):
    classes = {f"c{k}_{i}": f"class{k}" for k, size in enumerate(sizes) for i in range(size)}
    possible = sum(size - 1 for size in sizes)
    if n > possible:
        with pytest.raises(Exception, match="holdout_compounds"):
            pick_holdout(classes, n, np.random.default_rng(seed))
        return
    picked = pick_holdout(classes, n, np.random.default_rng(seed))
    assert len(set(picked)) == n
    assert picked == pick_holdout(classes, n, np.random.default_rng(seed))
    left = set(classes) - set(picked)
    assert {classes[c] for c in left} == set(classes.values())
    if n <= len(sizes) and all(size > 1 for size in sizes):
        assert len({classes[c] for c in picked}) == n


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    offset=st.floats(0, 6e4),
)
def test_pooled_dmso_moments_equal_the_statistics_of_all_pixels(sizes, seed, offset):
    rng = np.random.default_rng(seed)
    parts = [offset + rng.normal(0, 1 + 100 * rng.random(), (3, n)) for n in sizes]  # fields of unequal size
    moments = [np.stack([np.full(3, p.shape[1]), p.mean(axis=1), p.var(axis=1)], axis=1) for p in parts]
    mean, std = combine_moments(moments)
    pixels = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(mean, pixels.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(std, pixels.std(axis=1), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- synthetic plates


def class_signal(moa: str, all_classes: list[str]) -> np.ndarray:
    """Per-channel shift (in noise units) of an MoA: one channel up or down, DMSO none."""
    signal = np.zeros(len(CHANNELS))
    if moa != "DMSO":
        k = all_classes.index(moa)
        signal[k % 3] = 2.0 if (k // 3) % 2 == 0 else -2.0
    return signal


def write_fixture(tmp_path: Path, plates=PLATES) -> tuple[Path, Path]:
    """(image root, metadata folder): the real rows of `plates`, with synthetic TIFFs at their paths."""
    root, meta = tmp_path / "images", tmp_path / "metadata"
    meta.mkdir(parents=True)
    shutil.copy(METADATA / MOA_CSV, meta / MOA_CSV)
    with (METADATA / IMAGE_CSV).open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r["Image_Metadata_Plate_DAPI"] in plates]
        header = reader.fieldnames
    with (meta / IMAGE_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    moa = {(r["compound"], float(r["concentration"])): r["moa"] for r in csv.DictReader((METADATA / MOA_CSV).open())}
    all_classes = sorted(set(moa.values()) - {"DMSO"})
    rng = np.random.default_rng(0)
    for r in rows:
        key = (r["Image_Metadata_Compound"], float(r["Image_Metadata_Concentration"]))
        if key not in moa:
            continue  # never read by the loader, so not written (the loader must not ask for it)
        p = plates.index(r["Image_Metadata_Plate_DAPI"])
        offset, gain = 1000.0 + 3000.0 * p, 1.0 + 0.5 * p
        signal = class_signal(moa[key], all_classes)
        for c, channel in enumerate(CHANNELS):
            pixels = offset + gain * (rng.normal(signal[c] * NOISE, NOISE, SHAPE))
            path = root / r[f"Image_PathName_{channel}"] / r[f"Image_FileName_{channel}"]
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, np.clip(pixels, 0, 65535).astype(np.uint16))
    return root, meta


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    needs_metadata()
    base = tmp_path_factory.mktemp("bbbc021")
    write_fixture(base)
    return base


def copy_fixture(fixture_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(fixture_dir / "images", tmp_path / "images")
    shutil.copytree(fixture_dir / "metadata", tmp_path / "metadata")
    return tmp_path / "images", tmp_path / "metadata"


def dataset_config(root: Path, meta: Path, cache: Path, **extra) -> DatasetConfig:
    options = {"resize": 16, "holdout_compounds": 1, "workers": 2, **extra}
    return DatasetConfig(name="bbbc021", root=str(root), metadata=str(meta), cache_dir=str(cache), **options)


def test_normalisation_uses_the_dmso_statistics_of_each_fields_plate(fixture_dir, tmp_path):
    from nas.data.bbbc021 import load_crops

    root, meta = fixture_dir / "images", fixture_dir / "metadata"
    table = load_table(meta)
    cs = load_crops(dataset_config(root, meta, tmp_path / "cache"))

    def raw(field) -> np.ndarray:
        return np.stack([tifffile.imread(root / p).astype(np.float64) for p in field.paths])

    stats = {}
    for plate in PLATES:
        pixels = np.stack([raw(f) for f in table.dmso_of(plate)])  # (fields, 3, H, W)
        stats[plate] = (pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3)))
    other = dict(zip(PLATES, reversed(PLATES), strict=True))
    for i, field in enumerate(table.fields):
        got = cs.x[cs.field == i].astype(np.float64).mean(axis=(0, 2, 3))
        mean, std = stats[field.plate]
        np.testing.assert_allclose(got, (raw(field).mean(axis=(1, 2)) - mean) / std, atol=0.1)
        wrong_mean, wrong_std = stats[other[field.plate]]
        assert np.abs(got - (raw(field).mean(axis=(1, 2)) - wrong_mean) / wrong_std).max() > 5


def test_in_process_and_parallel_preprocessing_agree(fixture_dir, tmp_path):
    from nas.data.bbbc021 import load_crops

    root, meta = fixture_dir / "images", fixture_dir / "metadata"
    one = load_crops(dataset_config(root, meta, tmp_path / "a", workers=1)).x
    two = load_crops(dataset_config(root, meta, tmp_path / "b", workers=2)).x
    assert one.dtype == np.float16 and one.shape == (4 * 76, 3, 16, 16)
    np.testing.assert_array_equal(one, two)


def summary_lines(out) -> dict[str, str]:
    """The text summary's lines by label."""
    return {line[:16].strip(): line[16:] for line in out.stdout.splitlines() if line[:16].strip()}


def test_summary_counts_the_image_files_and_names_the_first_missing(nas, fixture_dir, tmp_path):
    """The summary looks for every file preprocessing reads (no pixel read): all there, exit 0; one gone, exit 2
    naming it; once the crops are cached, missing images no longer matter (nothing reads them again)."""
    from nas.data.bbbc021 import load_crops

    root, meta = copy_fixture(fixture_dir, tmp_path)
    cfg, _ = write_config(tmp_path, root, meta)
    out = nas("data", "summary", str(cfg))
    assert out.returncode == 0, out.stderr
    needed = 3 * (76 + 48)  # the 76 protocol fields and the 48 DMSO fields of their two plates
    assert summary_lines(out)["image files"] == f"{needed} of {needed} present under {root}"
    field = load_table(meta).fields[3]
    (root / field.paths[1]).unlink()
    out = nas("data", "summary", str(cfg), "--json")
    summary = json.loads(out.stdout)
    assert (summary["image_files_missing"], summary["first_missing_file"]) == (1, str(root / field.paths[1]))
    line = one_error_line(out)
    assert line.startswith("nas data: error: dataset.root: 1 of 372 BBBC021 image files missing under")
    assert line.endswith(str(root / field.paths[1]))
    shutil.copy(fixture_dir / "images" / field.paths[1], root / field.paths[1])
    data = yaml.safe_load(cfg.read_text())["dataset"]
    load_crops(DatasetConfig(**data))  # preprocess once: the cache entry
    shutil.rmtree(root / PLATES[0].split("_")[0])
    out = nas("data", "summary", str(cfg))
    assert out.returncode == 0, out.stderr
    lines = summary_lines(out)
    assert lines["cache"].startswith(str(tmp_path / "cache" / "bbbc021-")) and "first missing" in lines


@settings(max_examples=20, derandomize=True, database=None, deadline=None)
@given(fraction=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True))
def test_a_training_subset_is_refused_with_its_key(fraction):
    """`dataset.train_subset` would change the leave-one-compound-out protocol: refused wherever the crops load
    (both views), with its key, before any metadata or image is read."""
    from nas.data.bbbc021 import load_crops
    from nas.errors import UserError

    config = DatasetConfig(name="bbbc021", root="/nonexistent", metadata="/nonexistent", train_subset=fraction)
    with pytest.raises(UserError, match=r"^dataset\.train_subset: is .* but bbbc021 trains on every field"):
        load_crops(config)


def test_a_training_subset_is_a_one_line_error_in_the_summary(nas, fixture_dir, tmp_path):
    cfg, _ = write_config(tmp_path, fixture_dir / "images", fixture_dir / "metadata")
    data = yaml.safe_load(cfg.read_text())
    data["dataset"]["train_subset"] = 0.2
    cfg.write_text(yaml.safe_dump(data))
    line = one_error_line(nas("data", "summary", str(cfg)))
    assert line.startswith("nas data: error: dataset.train_subset: is 0.2, but bbbc021 trains on every field")


# ---------------------------------------------------------------- through the command line

ARCH = {
    "format": "nas-architecture/1",
    "in_channels": 3,
    "num_classes": 4,
    "input_size": 16,
    "stem_channels": 8,
    "bottleneck_width": 2,
    "compression": 0.5,
    "blocks": [
        {"layers": 2, "growth_rate": 8, "shortcuts": "111"},
        {"layers": 2, "growth_rate": 8, "shortcuts": "111"},
    ],
}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # a loaded 2-core machine: torch's spinning threads only slow tiny nets down


def write_config(tmp_path: Path, root: Path, meta: Path) -> tuple[Path, Path]:
    """(config, architecture) files for the fixture: 16x16 crops, one held-out compound, 3 short epochs."""
    cfg = tmp_path / "bbbc021.yaml"
    dataset = {"name": "bbbc021", "root": str(root), "metadata": str(meta), "cache_dir": str(tmp_path / "cache"),
               "resize": 16, "holdout_compounds": 1, "workers": 2}  # fmt: skip
    fitness = {"epochs": 3, "batch_size": 32, "lr": 0.05, "device": "cpu"}
    cfg.write_text(yaml.safe_dump({"name": "cells", "seed": 0, "dataset": dataset, "fitness": fitness}))
    arch = tmp_path / "arch.yaml"
    arch.write_text(yaml.safe_dump(ARCH, sort_keys=False))
    return cfg, arch


def cache_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "cache"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_pipeline_learns_the_moa_and_reuses_its_cache(nas, fixture_dir, tmp_path):
    root, meta = copy_fixture(fixture_dir, tmp_path)
    cfg, arch = write_config(tmp_path, root, meta)
    first = nas("train", str(arch), "--config", str(cfg), "--epochs", "1", "--json", env=ONE_THREAD)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["val_accuracy"] is not None
    assert [p.suffix for p in cache_files(tmp_path)] == [".npz", ".npz"]  # the crops and the plate statistics
    for tif in root.rglob("*.tif"):
        tif.write_bytes(b"not a TIFF any more")  # a second run that read an image would fail
    out = nas("train", str(arch), "--config", str(cfg), "--cv", "loco", "--json", "--save", str(tmp_path / "cv"),
              env=ONE_THREAD)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # 19 treatments of 7 compounds in 4 classes; AZ-A is the only Aurora kinase inhibitor, so its 6 treatments
    # cannot be learned leave-one-compound-out: 13/19 is the ceiling, chance is 1/4.
    assert report["level"] == "treatment" and report["groups"] == 19 and len(report["folds"]) == 7
    assert report["accuracy"] >= 0.5 and report["image_accuracy"] >= 0.5
    assert np.array(report["confusion"]).sum() == 19
    with (tmp_path / "cv" / "loco_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 76 and {r["fold"] for r in rows} == {r["compound"] for r in rows}
    with (tmp_path / "cv" / "loco_treatments.csv").open() as f:
        treatments = list(csv.DictReader(f))
    assert len(treatments) == 19
    assert np.mean([r["correct"] == "True" for r in treatments]) == pytest.approx(report["accuracy"])
    saved = json.loads((tmp_path / "cv" / "loco_metrics.json").read_text())
    assert saved == report
    trained = saved["settings"]  # how the folds were trained, as run: the config's epochs, resolved recipe
    assert (trained["epochs"], trained["batch_size"], trained["lr"]) == (3, 32, 0.05)
    assert (trained["augmentation"], trained["class_weights"]) == ("dihedral", "balanced")
    assert trained["architecture"] == str(arch.resolve()) and trained["params"] > 0
    assert [c["groups"] for c in saved["class_accuracy"]] == np.array(saved["confusion"]).sum(axis=1).tolist()


def one_error_line(out) -> str:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr
    return lines[-1]


def test_missing_image_file_is_a_one_line_error_and_leaves_no_cache(nas, fixture_dir, tmp_path):
    root, meta = copy_fixture(fixture_dir, tmp_path)
    cfg, arch = write_config(tmp_path, root, meta)
    field = load_table(meta).fields[5]
    (root / field.paths[2]).unlink()
    line = one_error_line(nas("train", str(arch), "--config", str(cfg), env=ONE_THREAD))
    assert "1 BBBC021 image file(s) missing" in line and field.paths[2] in line
    assert cache_files(tmp_path) == []


def test_unreadable_tiff_is_a_one_line_error_and_leaves_no_cache(nas, fixture_dir, tmp_path):
    root, meta = copy_fixture(fixture_dir, tmp_path)
    cfg, arch = write_config(tmp_path, root, meta)
    field = load_table(meta).fields[-1]
    (root / field.paths[1]).write_bytes(b"II*\x00garbage")
    line = one_error_line(nas("train", str(arch), "--config", str(cfg), env=ONE_THREAD))
    assert "cannot read TIFF" in line and field.paths[1] in line
    assert cache_files(tmp_path) == []


def test_wrong_csv_columns_name_the_file_and_the_column(nas, fixture_dir, tmp_path):
    root, meta = copy_fixture(fixture_dir, tmp_path)
    cfg, _ = write_config(tmp_path, root, meta)
    text = (meta / IMAGE_CSV).read_text().replace("Image_Metadata_Well_DAPI", "Well", 1)
    (meta / IMAGE_CSV).write_text(text)
    line = one_error_line(nas("data", "summary", str(cfg), "--json"))
    assert IMAGE_CSV in line and "Image_Metadata_Well_DAPI" in line
    (meta / IMAGE_CSV).unlink()
    line = one_error_line(nas("data", "summary", str(cfg)))
    assert "not found" in line and IMAGE_CSV in line
