"""Search spaces by name (`encoding: densenet_small`, `nas inspect densenet_small`), from any folder and from the
wheel; a path works as before."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml
from conftest import ROOT

from nas.config import load_config
from nas.errors import UserError
from nas.genome.space import load_space
from nas.genome.spaces import is_space_name, resolve_space, shipped_spaces

SHIPPED = sorted(p.stem for p in (ROOT / "encodings").glob("*.yaml"))


def write_config(folder, encoding: str):
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = encoding
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_file_of_encodings_is_shipped_by_its_name():
    assert SHIPPED and shipped_spaces() == SHIPPED


@pytest.mark.parametrize("value", ["densenet_small", "densenet_cifar", "my-space.v2"])
def test_a_bare_word_is_a_name(value):
    assert is_space_name(value)


@pytest.mark.parametrize("value", ["x.yaml", "X.YML", "./densenet_small", "a/b", "a\\b", "~", "~user", ".", "..", ""])
def test_a_separator_a_suffix_or_a_home_or_dot_is_a_path(value):
    assert not is_space_name(value)


def test_a_config_in_another_folder_loads_the_shipped_space_by_name(tmp_path):
    by_name = load_config(write_config(tmp_path, "densenet_small"))
    by_path = load_config(write_config(tmp_path, str(ROOT / "encodings/densenet_small.yaml")))
    assert load_space(by_name.encoding).to_dict() == load_space(by_path.encoding).to_dict()
    assert by_name.encoding == str(resolve_space("densenet_small", None))


def test_a_relative_path_still_resolves_against_the_config_folder(tmp_path):
    (tmp_path / "spaces").mkdir()
    shutil.copyfile(ROOT / "encodings/densenet_small.yaml", tmp_path / "spaces/densenet_small.yaml")
    config = load_config(write_config(tmp_path, "spaces/densenet_small.yaml"))
    assert config.encoding == str((tmp_path / "spaces/densenet_small.yaml").resolve())


def test_an_unknown_name_in_a_config_names_the_key_and_the_shipped_spaces(tmp_path):
    with pytest.raises(UserError) as err:
        load_config(write_config(tmp_path, "densenet_huge"))
    assert "encoding: no shipped search space named 'densenet_huge'" in str(err.value)
    assert all(name in str(err.value) for name in SHIPPED)


def test_an_unknown_name_exits_2_with_one_line_from_search_and_inspect(nas, tmp_path):
    config = write_config(tmp_path, "densenet_huge")
    for args, key in (
        (("search", str(config), "--run-dir", str(tmp_path / "run"), "--workers", "0"), "encoding"),
        (("inspect", "densenet_huge"), "file"),
    ):
        out = nas(*args, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert f"{key}: no shipped search space named 'densenet_huge'" in lines[0]
        assert all(name in lines[0] for name in SHIPPED)
    assert not (tmp_path / "run").exists()


def test_inspect_by_name_from_another_folder_prints_what_the_path_prints(nas, tmp_path):
    by_name = nas("inspect", "densenet_small", cwd=tmp_path)
    by_path = nas("inspect", str(ROOT / "encodings/densenet_small.yaml"), cwd=tmp_path)
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == by_path.stdout
    assert by_name.stdout.startswith("search space densenet_small")


def test_the_wheel_ships_the_spaces_and_configs_and_resolves_names_without_the_repository(tmp_path):
    """A copy of what the build reads, so that the build leaves nothing (build/, *.egg-info) in the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    for folder in ("nas", "encodings", "search_configs"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, timeout=240)  # fmt: skip
    (wheel,) = wheels.glob("evonas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.startswith("nas/spaces/")) == [f"nas/spaces/{s}.yaml" for s in SHIPPED]
    configs = sorted(p.stem for p in (ROOT / "search_configs").glob("*.yaml"))
    assert sorted(n for n in names if n.startswith("nas/configs/")) == [f"nas/configs/{c}.yaml" for c in configs]

    # The wheel unpacked is the installed layout: run from it, away from the repository and its encodings/.
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    probe = "import nas, nas.genome.spaces as s; print(nas.__file__); print(s.resolve_space('densenet_small', None))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    package_file, space_file = out.stdout.splitlines()
    assert package_file.startswith(str(installed))
    assert space_file == str(installed / "nas/spaces/densenet_small.yaml")
    inspect = subprocess.run([sys.executable, "-m", "nas", "inspect", "densenet_small"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stdout.startswith("search space densenet_small (4 dimensions)")

    # A shipped config by name, its search space by name in turn: a search from the installed files alone.
    search = subprocess.run([sys.executable, "-m", "nas", "search", "smoke", "--run-dir", "run", "--workers", "0",
                             "--max-evaluations", "2"], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert search.returncode == 0, search.stderr
    assert yaml.safe_load((elsewhere / "run/config.yaml").read_text())["encoding"] == space_file
    assert len((elsewhere / "run/evaluations.jsonl").read_text().splitlines()) == 2
