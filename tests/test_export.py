"""`nas export` through the real command line, on a real smoke search (synthetic objective, which trains nothing:
the export is the architecture alone; tests/test_best_weights.py exports a trained one)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, run_nas

from nas.genome.architecture import load_architecture
from nas.model.network import build_model
from nas.model.preprocess import RawInput, load_preprocess
from nas.model.program import load_program
from nas.run.runlog import ranked, read_results


def smoke_search(nas, run: Path) -> Path:
    out = nas("search", str(ROOT / "search_configs/smoke.yaml"), "--run-dir", str(run), "--workers", "0")
    assert out.returncode == 0, out.stderr
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return smoke_search(run_nas, tmp_path_factory.mktemp("export") / "run")


@pytest.fixture(scope="module")
def exported(run_dir) -> tuple[Path, str]:
    """One export of the best genome."""
    out = run_nas("export", str(run_dir))
    assert out.returncode == 0, out.stderr
    return run_dir / "export", out.stdout + out.stderr


def best_result(run_dir: Path, rank: int = 1):
    return ranked(read_results(run_dir / "evaluations.jsonl"))[rank - 1]


def images(arch, n: int, seed: int) -> torch.Tensor:
    """Digits in the units a user has (scikit-learn's 0-16 floats), which the model files take."""
    generator = torch.Generator().manual_seed(seed)
    return 16 * torch.rand(n, arch.in_channels, arch.input_size, arch.input_size, generator=generator)


def test_export_without_trained_weights_writes_the_architecture_and_says_to_retrain(exported):
    folder, printed = exported
    assert sorted(p.name for p in folder.iterdir()) == ["architecture.yaml"]
    assert str(folder / "architecture.yaml") in printed
    assert "no model file written: the run kept no trained weights" in printed and "--full --save" in printed


def test_provenance_names_the_best_log_line(run_dir, exported):
    folder, _ = exported
    best = best_result(run_dir)
    provenance = load_architecture(folder / "architecture.yaml").provenance
    assert provenance["key"] == best.key
    assert provenance["fitness"] == best.fitness
    assert (provenance["params"], provenance["flops"], provenance["step"]) == (best.params, best.flops, best.step)
    assert provenance["run"] == run_dir.name and provenance["config"] == "smoke" and provenance["rank"] == 1
    assert provenance["seed"] == yaml.safe_load((run_dir / "config.yaml").read_text())["seed"]
    assert provenance["date"]


def test_inspect_of_export_gives_the_logged_params(nas, run_dir, exported):
    folder, _ = exported
    out = nas("inspect", str(folder / "architecture.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    best = best_result(run_dir)
    assert info["params"] == best.params
    assert info["flops"] == best.flops


def test_retrained_weights_round_trip(nas, exported, tmp_path):
    """`nas train --full --save`: weights.pt is a plain state_dict that loads with weights_only=True into a fresh
    network, which behind the normalisation of preprocess.json gives exactly the outputs of the saved model.pt2;
    preprocess.json holds the statistics of the full training split and says the weights are retrained."""
    folder, _ = exported
    save = tmp_path / "retrained"
    config = ROOT / "search_configs/digits_quick.yaml"
    out = nas(
        "train",
        str(folder / "architecture.yaml"),
        "--config",
        str(config),
        "--full",
        "--save",
        str(save),
        "--epochs",
        "1",
    )
    assert out.returncode == 0, out.stderr
    arch = load_architecture(folder / "architecture.yaml")
    state = torch.load(save / "weights.pt", weights_only=True)
    model = build_model(arch)
    model.load_state_dict(state)
    model.eval()
    trained = load_program(save / "model.pt2")
    pre = load_preprocess(save / "preprocess.json")
    test_accuracy = json.loads((save / "metrics.json").read_text())["test_accuracy"]
    assert pre.weights == {"source": "retrained", "epochs": 1, "test_accuracy": test_accuracy}
    from nas.config import load_config
    from nas.data.loading import load_dataset

    data = load_dataset(load_config(config).dataset, 0, full=True)
    assert pre.mean == list(data.mean) and pre.std == list(data.std) and pre.class_names == data.class_names
    x = images(arch, 6, seed=7)
    with torch.no_grad():
        torch.testing.assert_close(RawInput(model, pre)(x), trained(x), rtol=0, atol=1e-5)
    assert 0.0 <= test_accuracy <= 1.0


def test_rank_beyond_the_ok_results_exits_2_with_one_line(nas, run_dir):
    ok = len(ranked(read_results(run_dir / "evaluations.jsonl")))
    out = nas("export", str(run_dir), "--rank", str(ok + 1), "--out", str(run_dir.parent / "never"))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"--rank {ok + 1}" in out.stderr
    assert not (run_dir.parent / "never").exists()


def test_not_a_run_directory_exits_2(nas, tmp_path):
    out = nas("export", str(tmp_path))
    assert out.returncode == 2
    assert "not a run directory" in out.stderr and out.stderr.count("\n") == 1


def test_rank_k_refreshes_the_default_folder_but_never_foreign_files(nas, run_dir, exported, tmp_path):
    copy = shutil.copytree(run_dir, tmp_path / "run")
    out = nas("export", str(copy), "--rank", "2")
    assert out.returncode == 0, out.stderr
    provenance = load_architecture(copy / "export/architecture.yaml").provenance
    assert (provenance["rank"], provenance["key"]) == (2, best_result(run_dir, 2).key)
    assert sorted(p.name for p in (copy / "export").iterdir()) == ["architecture.yaml"]
    assert [p.name for p in copy.iterdir() if ".staging-" in p.name or ".old-" in p.name] == []

    (copy / "export/notes.txt").write_text("mine")
    out = nas("export", str(copy))
    assert out.returncode == 2 and "notes.txt" in out.stderr
    assert load_architecture(copy / "export/architecture.yaml").provenance["rank"] == 2


def test_an_explicit_out_must_be_empty(nas, run_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/file").write_text("keep")
    out = nas("export", str(run_dir), "--out", str(tmp_path / "taken"))
    assert out.returncode == 2 and "not empty" in out.stderr
    assert (tmp_path / "taken/file").read_text() == "keep"


def test_onnx_without_the_export_extra_exits_2(nas, run_dir, tmp_path):
    shadow = tmp_path / "shadow/onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = nas("export", str(run_dir), "--onnx", "--out", str(tmp_path / "o"), env={"PYTHONPATH": str(shadow.parent)})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "evonas[export]" in out.stderr and "onnxruntime" in out.stderr
    assert not (tmp_path / "o").exists()


def test_a_write_into_the_staging_folder_that_fails_is_one_line_naming_the_output(tmp_path):
    """Disk full while the outputs are written (after the staging folder was made): a `DiskWriteError` naming
    the output folder, the staging folder gone, the previous outputs intact; an input error elsewhere is not
    blamed on the output."""
    import errno

    from nas.atomicfile import DiskWriteError
    from nas.stagedir import staged_directory

    target = tmp_path / "export"
    target.mkdir()
    (target / "architecture.yaml").write_text("old")
    owned = {"architecture.yaml", "model.ts"}
    with pytest.raises(DiskWriteError, match=f"cannot write {target}: No space left on device"):
        with staged_directory(target, refreshable=True, owned=owned) as staging:
            raise OSError(errno.ENOSPC, "No space left on device", str(staging / "model.ts"))
    assert (target / "architecture.yaml").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["export"], "the staging folder was left behind"
    with pytest.raises(DiskWriteError, match=f"cannot write {target}"):  # a write() on a full disk names no file
        with staged_directory(target, refreshable=True, owned=owned) as staging:
            (staging / "model.ts").write_bytes(b"x")
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(FileNotFoundError):
        with staged_directory(target, refreshable=True, owned=owned):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "input.yaml"))
