"""Datasets: splits (hypothesis), digits, imagefolder trees and archives, the cache, bad configs via the CLI."""

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from nas.config import DatasetConfig
from nas.data.assemble import channel_stats
from nas.data.cache import cached_arrays
from nas.data.loading import load_dataset
from nas.data.resizing import resize_images
from nas.data.splits import stratified_pick, training_subset, validation_split
from nas.errors import UserError

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
label_arrays = st.lists(st.integers(0, 5), min_size=1, max_size=300).map(np.array)


# --- splits -------------------------------------------------------------------------------------------------


@given(label_arrays, st.floats(0, 1), st.integers(0, 2**31))
def test_stratified_pick_partitions_and_keeps_class_proportions(labels, fraction, seed):
    picked, rest = stratified_pick(labels, fraction, seed)
    assert sorted(np.concatenate([picked, rest]).tolist()) == list(range(len(labels)))
    assert len(picked) == int(np.floor(fraction * len(labels) + 0.5))
    for c in np.unique(labels):
        assert abs((labels[picked] == c).sum() - fraction * (labels == c).sum()) < 1 + 1e-9
    again, _ = stratified_pick(labels, fraction, seed)
    assert np.array_equal(picked, again)


@given(label_arrays, st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_validation_split_leaves_every_class_in_training(labels, fraction, seed):
    train, val = validation_split(labels, fraction, seed)
    assert set(labels[train].tolist()) == set(labels.tolist())
    assert not set(train.tolist()) & set(val.tolist())


def test_validation_carve_follows_the_seed_and_the_subset_does_not():
    labels = np.repeat(np.arange(10), 50)
    assert not np.array_equal(validation_split(labels, 0.2, 0)[1], validation_split(labels, 0.2, 1)[1])
    assert np.array_equal(training_subset(labels, 0.3), training_subset(labels, 0.3))
    assert np.bincount(labels[training_subset(labels, 0.3)]).tolist() == [15] * 10


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(4, 12), st.integers(4, 24))
def test_resize_keeps_dtype_and_constant_images(channels, size, new):
    x = np.full((3, channels, size, size), 77, dtype=np.uint8)
    out = resize_images(x, new)
    assert out.shape == (3, channels, new, new) and out.dtype == np.uint8
    assert (out == 77).all()


def test_channel_stats_match_numpy():
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 5, 5), dtype=np.uint8)
    mean, std = channel_stats(x)
    assert mean == pytest.approx(x.mean(axis=(0, 2, 3)))
    assert std == pytest.approx(x.std(axis=(0, 2, 3)))
    assert channel_stats(np.zeros((4, 1, 2, 2), dtype=np.uint8))[1] == (1.0,)


# --- digits -------------------------------------------------------------------------------------------------


def test_digits_has_a_fixed_test_split_a_seeded_validation_and_train_statistics():
    a = load_dataset(DatasetConfig(name="digits"), seed=0)
    b = load_dataset(DatasetConfig(name="digits"), seed=1)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.uint8 and a.num_classes == 10
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797 and len(a.y_test) == 359
    assert np.array_equal(a.x_test, b.x_test), "the test split is the same for every seed"
    assert not np.array_equal(a.y_val, b.y_val) or not np.array_equal(a.x_val, b.x_val)
    assert a.mean[0] == pytest.approx(a.x_train.mean())
    full = load_dataset(DatasetConfig(name="digits"), seed=0, full=True)
    assert full.x_val is None and len(full.y_train) == len(a.y_train) + len(a.y_val)


def test_digits_resize_and_subset():
    data = load_dataset(DatasetConfig(name="digits", resize=16, train_subset=0.5), seed=0)
    assert data.input_size == 16 and data.x_test.shape[2:] == (16, 16)
    assert len(data.y_train) + len(data.y_val) == round(0.5 * (1797 - 359))


# --- imagefolder --------------------------------------------------------------------------------------------

CLASSES = ("cat", "dog", "eel")


def image_bytes(value: int, size: int = 8, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A flat image whose colour encodes its class, so a network or a test can tell classes apart."""
    colour = (value, 255 - value, value // 2) if mode == "RGB" else value
    buf = io.BytesIO()
    Image.new(mode, (size, size), colour).save(buf, format=fmt)
    return buf.getvalue()


def write_tree(root: Path, per_class: int = 6, test_per_class: int = 2, mode: str = "RGB") -> Path:
    for split, count in (("train", per_class), ("test", test_per_class)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{i:03d}.png").write_bytes(image_bytes(40 + 80 * c + i, mode=mode))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def make_tar(tree: Path, path: Path, wrap: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=f"{wrap}/{split}" if wrap else split)
    return path


def folder_config(root: Path, tmp_path: Path, **kw) -> DatasetConfig:
    return DatasetConfig(name="imagefolder", root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def test_imagefolder_reads_a_tree_with_sorted_classes(tmp_path):
    tree = write_tree(tmp_path / "tree")
    data = load_dataset(folder_config(tree, tmp_path, validation_fraction=1 / 6), seed=0)
    assert data.class_names == list(CLASSES) and data.num_classes == 3
    assert data.x_train.shape == (15, 3, 8, 8) and data.x_val.shape == (3, 3, 8, 8) and data.x_test.shape[0] == 6
    assert sorted(np.bincount(data.y_val).tolist()) == [1, 1, 1]
    assert data.x_test[0, 0, 0, 0] == 40, "test images sorted by class then name, pixels intact (PNG)"


def test_imagefolder_tar_gz_equals_the_tree_and_looks_through_a_wrapping_folder(tmp_path):
    tree = write_tree(tmp_path / "tree")
    cfg_tree = folder_config(tree, tmp_path)
    for wrap in (None, "cifar"):
        archive = make_tar(tree, tmp_path / f"data-{wrap}.tar.gz", wrap)
        from_tar = load_dataset(folder_config(archive, tmp_path), seed=3)
        from_tree = load_dataset(cfg_tree, seed=3)
        assert np.array_equal(from_tar.x_train, from_tree.x_train)
        assert np.array_equal(from_tar.y_test, from_tree.y_test)


def test_imagefolder_greyscale_gives_one_channel_and_resize_applies(tmp_path):
    tree = write_tree(tmp_path / "tree", mode="L")
    data = load_dataset(folder_config(tree, tmp_path, resize=4), seed=0)
    assert data.in_channels == 1 and data.input_size == 4 and data.x_test.shape[1:] == (1, 4, 4)


def test_imagefolder_cache_answers_the_second_load(tmp_path):
    """After the first load, destroy every image (same size and mtime): only the cache can answer."""
    tree = write_tree(tmp_path / "tree")
    archive = make_tar(tree, tmp_path / "data.tar.gz")
    cfg = folder_config(archive, tmp_path)
    first = load_dataset(cfg, seed=0)
    entries = list((tmp_path / "cache").glob("imagefolder-*.npz"))
    assert len(entries) == 1 and not list((tmp_path / "cache").glob(".*"))
    stat = archive.stat()
    archive.write_bytes(b"\0" * stat.st_size)
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_dataset(cfg, seed=0)
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.x_test, second.x_test)


def test_a_torn_cache_entry_is_rebuilt_and_replaced(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(10)}

    assert cached_arrays("k", {"a": 1}, str(tmp_path), build)["x"].sum() == 45
    entry = next(tmp_path.glob("k-*.npz"))
    entry.write_bytes(entry.read_bytes()[:20])
    assert cached_arrays("k", {"a": 1}, str(tmp_path), build)["x"].sum() == 45
    assert cached_arrays("k", {"a": 1}, str(tmp_path), build)["x"].sum() == 45
    assert len(calls) == 2


def test_imagefolder_mixed_sizes_need_resize(tmp_path):
    tree = write_tree(tmp_path / "tree")
    (tree / "train" / "dog" / "big.png").write_bytes(image_bytes(9, size=12))
    with pytest.raises(UserError, match="set dataset.resize"):
        load_dataset(folder_config(tree, tmp_path), seed=0)
    assert load_dataset(folder_config(tree, tmp_path, resize=8), seed=0).input_size == 8


def test_imagefolder_without_train_split_or_with_a_broken_image_is_a_user_error(tmp_path):
    (tmp_path / "empty" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="no images under train"):
        load_dataset(folder_config(tmp_path / "empty", tmp_path), seed=0)
    tree = write_tree(tmp_path / "tree")
    (tree / "train" / "eel" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot decode image .*bad.png"):
        load_dataset(folder_config(tree, tmp_path), seed=0)


# --- bad dataset configs through the real command line ---------------------------------------------------------


def bad_config(tmp_path: Path, dataset: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, "dataset": dataset, "fitness": {"epochs": 1}}))
    return path


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"name": "mnist"}, "dataset.name: unknown dataset 'mnist'"),
        ({"name": "imagefolder"}, "dataset.root: is required for imagefolder"),
        ({"name": "imagefolder", "root": "nowhere"}, "does not exist"),
        ({"name": "cifar10", "root": "cifar-here"}, "CIFAR-10 not found under"),
        ({"name": "svhn", "root": "svhn-here"}, "set dataset.download: true"),
        ({"name": "digits", "validation_fraction": 0}, "dataset.validation_fraction: must be > 0"),
        ({"name": "digits", "validation_fraction": 1.0}, "dataset.validation_fraction: must be < 1"),
    ],
)
def test_bad_dataset_configs_exit_2_with_one_line(nas, tmp_path, dataset, expected):
    (tmp_path / "cifar-here").mkdir()
    out = nas("train", str(ROOT / "examples/densenet_small.yaml"), "--config", str(bad_config(tmp_path, dataset)),
              env=ONE_THREAD)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert out.stdout == ""


def test_digits_read_from_the_bundled_file_are_scikit_learns_digits():
    """The CSV read without importing scikit-learn gives exactly `load_digits`'s images and labels."""
    from sklearn.datasets import load_digits

    from nas.data.digits import read_digits

    images, labels = read_digits()
    bunch = load_digits()
    assert images.shape == (1797, 8, 8) and labels.dtype == np.int64
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)


def test_a_digits_process_does_not_import_scikit_learn():
    """Loading digits costs no scikit-learn import (over a second in every training process)."""
    code = "import sys; from nas.data.digits import digits_arrays as d; d(None, 1.0); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
