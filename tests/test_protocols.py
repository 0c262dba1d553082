"""The shared cross-validation loop (`nas.evaluate.protocols`) with stand-in models: its pooling, metrics, CSVs.

No training here: `train` returns given probabilities, so the figures can be checked against an independent
computation of the protocol (median over a well's images, median over a treatment's wells, argmax).
"""

import csv
import dataclasses
import logging
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nas.data.dataset import ImageData
from nas.data.folds import Fold
from nas.evaluate.protocols import CrossValReport, cross_validate, csv_text, plain, score_fold

CLASSES = ["a", "b", "c"]


def make_fold(name: str, rng: np.random.Generator, treatments: int, first_id: int) -> tuple[Fold, np.ndarray]:
    """A fold whose test split has `treatments` treatments of 1-3 wells of 1-4 images, and random probabilities."""
    labels, groups = [], []
    well = first_id * 100
    for t in range(treatments):
        label = int(rng.integers(len(CLASSES)))
        for _ in range(int(rng.integers(1, 4))):
            well += 1
            for _ in range(int(rng.integers(1, 5))):
                labels.append(label)
                groups.append((well, first_id + t))
    y = np.array(labels)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=len(y))
    data = ImageData(x_train=np.zeros((2, 1, 2, 2)), y_train=np.zeros(2, dtype=int), x_val=None, y_val=None,
                     x_test=np.zeros((len(y), 1, 2, 2)), y_test=y, num_classes=3, class_names=CLASSES, mean=(0.0,),
                     std=(1.0,), test_groups=np.array(groups))  # fmt: skip
    table = {"treatment": np.array([f"t{g[1]}" for g in groups]), "well": np.array([g[0] for g in groups])}
    return Fold(name, data, table, ("treatment",), level="treatment"), probs


def expected_treatments(fold: Fold, probs: np.ndarray) -> list[bool]:
    """Correctness per treatment, computed directly from the protocol's definition."""
    out = []
    groups = fold.data.test_groups
    for t in np.unique(groups[:, 1]):
        wells = np.unique(groups[groups[:, 1] == t, 0])
        profile = np.median([np.median(probs[groups[:, 0] == w], axis=0) for w in wells], axis=0)
        out.append(int(np.argmax(profile)) == int(fold.data.y_test[groups[:, 1] == t][0]))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_pooled_metrics_follow_the_protocol(seed, sizes):
    rng = np.random.default_rng(seed)
    made = [make_fold(f"f{i}", rng, n, 10 * i) for i, n in enumerate(sizes)]
    given_probs = {fold.name: p for fold, p in made}
    built = []

    def model_factory(fold: Fold) -> nn.Module:
        built.append(fold.name)
        return nn.Identity()

    report = cross_validate((f for f, _ in made), model_factory, lambda model, fold: given_probs[fold.name])
    assert built == [f.name for f, _ in made]  # one fresh model per fold, in order
    correct = [c for fold, p in made for c in expected_treatments(fold, p)]
    assert report.accuracy == pytest.approx(np.mean(correct))
    images = np.concatenate([p.argmax(1) == f.data.y_test for f, p in made])
    assert report.image_accuracy == pytest.approx(images.mean())
    confusion = report.confusion()
    assert confusion.sum() == len(correct) == sum(sizes)
    assert np.trace(confusion) == sum(correct)
    for score, (fold, p) in zip(report.folds, made, strict=True):
        assert score.accuracy == pytest.approx(np.mean(expected_treatments(fold, p)))
        assert score.images == len(fold.data.y_test)


def test_csv_files_hold_one_row_per_image_and_per_treatment(tmp_path):
    rng = np.random.default_rng(3)
    made = [make_fold("x", rng, 3, 0), make_fold("y", rng, 2, 10)]
    probs = {f.name: p for f, p in made}
    report = cross_validate([f for f, _ in made], lambda fold: nn.Identity(), lambda m, fold: probs[fold.name])
    files = report.write_csv(tmp_path, "loco")
    with open(files["predictions"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(f.data.y_test) for f, _ in made)
    assert {"fold", "treatment", "well", "true", "predicted", "correct", "p_a", "p_b", "p_c"} <= set(rows[0])
    with open(files["treatment"]) as f:
        treatments = list(csv.DictReader(f))
    assert [r["treatment"] for r in treatments] == ["t0", "t1", "t2", "t10", "t11"]
    assert sum(int(r["images"]) for r in treatments) == len(rows)
    assert report.to_dict()["groups"] == 5


def test_wrong_probability_shape_is_refused():
    fold, probs = make_fold("x", np.random.default_rng(0), 2, 0)
    with pytest.raises(ValueError, match="shape"):
        cross_validate([fold], lambda f: nn.Identity(), lambda m, f: probs[:, :2])


def small_fold(name: str = "f") -> tuple[Fold, np.ndarray]:
    """Four images: well 1 (two images) and well 2 of treatment 0 (class a), well 3 of treatment 1 (class b)."""
    y = np.array([0, 0, 0, 1])
    groups = np.array([[1, 0], [1, 0], [2, 0], [3, 1]])
    data = ImageData(x_train=np.zeros((2, 1, 2, 2)), y_train=np.zeros(2, dtype=int), x_val=None, y_val=None,
                     x_test=np.zeros((4, 1, 2, 2)), y_test=y, num_classes=3, class_names=CLASSES, mean=(0.0,),
                     std=(1.0,), test_groups=groups)  # fmt: skip
    table = {"treatment": np.array(["t0", "t0", "t0", "t1"]), "well": np.array([1, 1, 2, 3])}
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.1234567, 0.6765433]])
    return Fold(name, data, table, ("treatment",), level="treatment"), probs


def test_rows_of_a_fold_worked_out_by_hand():
    fold, probs = small_fold()
    report = cross_validate([fold], lambda f: nn.Identity(), lambda m, f: probs)
    first = report.image_rows[0]
    assert list(first) == ["fold", "treatment", "well", "true", "predicted", "correct", "p_a", "p_b", "p_c"]
    assert first == {"fold": "f", "treatment": "t0", "well": 1, "true": "a", "predicted": "a", "correct": True,
                     "p_a": 0.5, "p_b": 0.3, "p_c": 0.2}  # fmt: skip
    assert type(first["well"]) is int and type(first["treatment"]) is str, "numpy scalars become Python ones"
    assert [r["predicted"] for r in report.image_rows] == ["a", "c", "a", "c"]
    assert report.image_rows[3]["p_b"] == 0.123457, "probabilities rounded to 6 decimals"
    # Treatment t0: well 1 = median of its two images (0.3, 0.25, 0.45), well 2 = (0.6, 0.3, 0.1); the median of
    # the two wells is (0.45, 0.275, 0.275): class a. Treatment t1 is its one image: class c, wrongly (b).
    t0, t1 = report.group_rows
    assert list(t0) == ["fold", "treatment", "images", "true", "predicted", "correct", "p_a", "p_b", "p_c"]
    assert t0 == {"fold": "f", "treatment": "t0", "images": 3, "true": "a", "predicted": "a", "correct": True,
                  "p_a": 0.45, "p_b": 0.275, "p_c": 0.275}  # fmt: skip
    assert (t1["images"], t1["true"], t1["predicted"], t1["correct"]) == (1, "b", "c", False)
    assert report.accuracy == 0.5 and report.image_accuracy == 0.5
    assert report.confusion().tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]] and report.confusion().dtype == np.int64


def test_summary_of_a_cross_validation(tmp_path, caplog):
    (f1, p1), (f2, _) = small_fold("one"), small_fold("two")
    seen = []
    with caplog.at_level(logging.INFO, logger="nas.evaluate.protocols"):
        report = cross_validate(iter([f1, f2]), lambda f: nn.Identity(), lambda m, f: p1, total=2, on_fold=seen.append)
    assert caplog.messages == [f"fold {n}: treatment accuracy 0.500 (2), image accuracy 0.500" for n in ("one", "two")]
    assert [s.name for s in seen] == ["one", "two"] and seen == report.folds
    score = report.folds[0]
    assert (score.images, score.groups, score.accuracy, score.image_accuracy) == (4, 2, 0.5, 0.5)
    assert type(score.seconds) is float and 0 <= score.seconds < 60 and score.seconds == round(score.seconds, 3)
    summary = report.to_dict()
    assert {k: v for k, v in summary.items() if k != "folds"} == {
        "level": "treatment",
        "accuracy": 0.5,
        "image_accuracy": 0.5,
        "groups": 4,
        "images": 8,
        "class_names": CLASSES,
        "confusion": [[2, 0, 0], [0, 0, 2], [0, 0, 0]],
        "class_accuracy": [
            {"class": "a", "groups": 2, "correct": 2, "accuracy": 1.0},
            {"class": "b", "groups": 2, "correct": 0, "accuracy": 0.0},
            {"class": "c", "groups": 0, "correct": 0, "accuracy": None},
        ],
    }
    assert summary["folds"][1] == {"name": "two", "images": 4, "groups": 2, "accuracy": 0.5, "image_accuracy": 0.5,
                                   "seconds": report.folds[1].seconds}  # fmt: skip
    files = report.write_csv(tmp_path, "cv")
    assert files == {
        "predictions": str(tmp_path / "cv_predictions.csv"),
        "treatment": str(tmp_path / "cv_treatments.csv"),
    }
    assert (tmp_path / "cv_treatments.csv").read_text().splitlines()[
        0
    ] == "fold,treatment,images,true,predicted,correct,p_a,p_b,p_c"


def test_an_empty_report_and_bad_folds():
    empty = CrossValReport("well", ["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty list behind the NaN
        assert math.isnan(empty.accuracy) and math.isnan(empty.image_accuracy)
    assert empty.to_dict()["accuracy"] is None and empty.to_dict()["image_accuracy"] is None
    assert csv_text([]) == "" and csv_text([{"a": 1, "b": "x"}]) == "a,b\n1,x\n"
    assert plain("x") == "x" and plain(np.int64(3)) == 3 and type(plain(np.float32(0.5))) is float
    with pytest.raises(ValueError, match="^no folds to cross-validate$"):
        cross_validate([], lambda f: nn.Identity(), lambda m, f: None)
    fold, probs = small_fold("x")
    with pytest.raises(ValueError, match=r"^fold x: test probabilities of shape \(4, 2\), expected \(4, 3\)$"):
        score_fold(fold, probs[:, :2])
    no_groups = Fold("g", dataclasses.replace(fold.data, test_groups=None), fold.test_table, ("treatment",))
    with pytest.raises(ValueError, match="^fold g has no test split with groups$"):
        score_fold(no_groups, probs)


def test_a_fold_reduced_by_the_mean_with_one_group_level():
    """BBBC014-like: the tiles of one well, reduced by the mean (the median would call it class b)."""
    data = ImageData(x_train=np.zeros((2, 1, 2, 2)), y_train=np.zeros(2, dtype=int), x_val=None, y_val=None,
                     x_test=np.zeros((3, 1, 2, 2)), y_test=np.zeros(3, dtype=int), num_classes=3, class_names=CLASSES,
                     mean=(0.0,), std=(1.0,), test_groups=np.array([[4], [4], [4]]), group_reduce="mean")  # fmt: skip
    fold = Fold("m", data, {"well": np.array([4, 4, 4])}, ("well",), level="well")
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    report = cross_validate([fold], lambda f: nn.Identity(), lambda m, f: probs)
    (row,) = report.group_rows
    assert (row["well"], row["images"], row["predicted"], row["correct"]) == (4, 3, "a", True)
    assert row["p_a"] == pytest.approx(1.4 / 3, abs=1e-6)


def test_text_report_prints_the_confusion_matrix_and_each_classs_accuracy(tmp_path, capsys):
    """`nas train --cv` without `--json`: after the folds, the matrix (a row per true class, numbered columns)
    with each class's correct count, group count and accuracy, and the settings the folds were trained with."""
    from nas.evaluate.crossval import print_summary

    (f1, p1), (f2, _) = small_fold("one"), small_fold("two")
    report = cross_validate(iter([f1, f2]), lambda f: nn.Identity(), lambda m, f: p1)
    settings = {"architecture": "a.yaml", "params": 1234, "epochs": 1, "batch_size": 8, "optimizer": "sgd",
                "lr": 0.05, "schedule": "cosine", "augmentation": "dihedral", "class_weights": "balanced"}  # fmt: skip
    print_summary({"seed": 0, **report.to_dict(), "settings": settings, "files": {"metrics": "m.json"}})
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("treatment confusion matrix"))
    header, a, b, c = lines[start + 1 : start + 5]
    assert header.split() == ["1", "2", "3", "treatments", "correct", "accuracy"]
    assert a.split() == ["1", "a", "2", "0", "0", "2", "2", "1.0000"]
    assert b.split() == ["2", "b", "0", "0", "2", "2", "0", "0.0000"]
    assert c.split() == ["3", "c", "0", "0", "0", "0", "0", "n/a"]
    trained = next(line for line in lines if line.startswith("trained: "))
    assert "a.yaml (1,234 params), 1 epoch, batch 8, sgd lr 0.05 (cosine), augmentation dihedral" in trained
    assert "class weights balanced, seed 0" in trained and lines[-1] == "metrics: m.json"


def test_confusion_text_keeps_its_columns_for_long_names_and_large_counts():
    from nas.evaluate.protocols import confusion_lines

    names = ["Microtubule destabilizers", "b"]
    lines = confusion_lines(names, [[1234, 5], [0, 7]], "treatment")
    assert [len(line) for line in lines[1:]] == [len(lines[1])] * 3, "every row as wide as the header"
    assert lines[2].split()[:5] == ["1", "Microtubule", "destabilizers", "1234", "5"]
