"""Search configs by name (`nas search smoke`), from any folder; a path works as before. The wheel's copy is
checked in tests/test_space_names.py, beside the search spaces'."""

from pathlib import Path

import hypothesis.strategies as st
import pytest
import yaml
from conftest import ROOT
from hypothesis import given

from nas.config import load_config
from nas.errors import UserError
from nas.genome.spaces import resolve_space
from nas.shipped_configs import resolve_config, shipped_configs

SHIPPED = sorted(p.stem for p in (ROOT / "search_configs").glob("*.yaml"))


def test_every_file_of_search_configs_is_shipped_by_its_name():
    assert "smoke" in SHIPPED and shipped_configs() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_config_loads_by_name_from_another_folder_as_from_its_path(name, tmp_path, monkeypatch):
    """A shipped config names its search space by name: the same space whichever folder the config is read in."""
    by_path = load_config(ROOT / "search_configs" / f"{name}.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_config(name) == by_path
    written = yaml.safe_load((ROOT / "search_configs" / f"{name}.yaml").read_text())
    if written.get("encoding") is not None:
        assert "/" not in written["encoding"], f"{name} names its space by path: {written['encoding']}"
        assert by_path.encoding == str(resolve_space(written["encoding"], None))


def test_a_path_still_works_and_is_never_taken_for_a_name(tmp_path, monkeypatch):
    copy = tmp_path / "smoke"
    copy.write_text((ROOT / "search_configs/smoke.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert resolve_config("./smoke") == Path("./smoke")
    assert load_config("./smoke") == load_config("smoke")
    assert resolve_config("smoke") == ROOT / "search_configs" / "smoke.yaml"


@given(st.text(), st.sampled_from(["/", "\\", ".yaml", ".YML"]), st.text())
def test_a_value_with_a_separator_or_a_suffix_is_the_path_it_names(head, mark, tail):
    value = head + mark + (tail if "/" in mark or "\\" in mark else "")
    assert resolve_config(value) == Path(value)


@given(st.text(alphabet=st.characters(blacklist_characters="/\\~.", blacklist_categories=["Cs"]), min_size=1))
def test_an_unknown_name_lists_the_shipped_ones(value):
    if value.strip() == "" or value in SHIPPED:
        return
    with pytest.raises(UserError) as err:
        resolve_config(value)
    assert str(err.value).startswith("no shipped config named ")
    assert f"(shipped: {', '.join(SHIPPED)})" in str(err.value)


def test_search_by_name_from_another_folder_and_an_unknown_name_exits_2_with_one_line(nas, tmp_path):
    out = nas("search", "smoke", "--run-dir", "run", "--workers", "0", "--max-evaluations", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len((tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()) == 3

    out = nas("search", "smokey", "--workers", "0", cwd=tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("nas search: error: no shipped config named 'smokey' (shipped: ")
    assert all(name in line for name in SHIPPED)
