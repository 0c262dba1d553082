"""The command that writes a backbone's ImageNet weights file: the missing-file error prints it with the path the
config reads, the shipped transfer configs' comments print it with the path relative to their folder, and what it
writes is a file the arm's loader accepts. Nothing here downloads: the run of the command swaps the download for
the same constructor without weights.
"""

import ast
import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from nas.config import load_config, parse_config
from nas.errors import UserError
from nas.transfer.backbones import BACKBONES, get_backbone
from nas.transfer.plan import plan_runs
from nas.transfer.weights import load_checked
from nas.transfer.weights_recipe import IMAGENET_SOURCES, save_code, save_command

MODELS = ["resnet50", "inception_v3", "inception_resnet_v2"]
TRANSFER_CONFIGS = sorted((ROOT / "search_configs").glob("*_transfer.yaml"))
# The download in each command, and the same constructor without it (random weights, the same keys).
OFFLINE = {"weights='IMAGENET1K_V1'": "weights=None", "pretrained=True": "pretrained=False"}


def saved_path(command: str) -> str:
    """The file a `python -c CODE` command writes, read as a POSIX shell and Python read the command: the path
    of the name its `torch.save` writes to."""
    words = shlex.split(command)
    assert words[:2] == ["python", "-c"] and len(words) == 3, command
    tree = ast.parse(words[2])
    paths = {
        node.targets[0].id: ast.literal_eval(node.value.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and ast.unparse(node.value.func) == "pathlib.Path"
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.save":
            return paths[node.args[1].id]
    raise AssertionError(f"no torch.save in {command!r}")


def test_every_backbone_has_a_recipe():
    assert sorted(IMAGENET_SOURCES) == sorted(BACKBONES.names()) == sorted(MODELS)


@given(
    path=st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), min_size=1),
    model=st.sampled_from(MODELS),
)
def test_the_command_writes_to_the_path_it_names_whatever_its_characters(path, model):
    """Quotes, `$`, backslashes, spaces and newlines in a path reach Python as they are, through the shell."""
    assert saved_path(save_command(model, path)) == path


def test_missing_file_error_prints_the_command_for_the_path_the_config_reads(tmp_path):
    """One line: the path, the command writing exactly there, and the from-scratch alternative."""
    config = parse_config({"baseline": {"models": MODELS, "weights": "w/{model}-imagenet.pth"}}, tmp_path)
    with pytest.raises(UserError) as err:
        plan_runs(config)
    assert err.value.key == "baseline.weights"
    line = str(err.value)
    assert "\n" not in line and "baseline.pretrained: false" in line
    command = re.search(r"with: (python -c .*?); or train from scratch", line).group(1)
    assert saved_path(command) == str(tmp_path / "w" / "resnet50-imagenet.pth")
    for model in MODELS:
        path = tmp_path / "w" / f"{model}-imagenet.pth"
        with pytest.raises(UserError, match=re.escape(save_command(model, path))):
            load_checked(get_backbone(model), path)


def comment_commands(config: Path) -> list[str]:
    """The `python -c` commands in a config's comments."""
    lines = config.read_text(encoding="utf-8").splitlines()
    return [line.lstrip("# ") for line in lines if line.lstrip("# ").startswith("python -c ")]


@pytest.mark.parametrize("config", TRANSFER_CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_comments_write_where_the_config_reads(config):
    """Run in the config's folder, as its comment says, each command writes the file that config's backbone
    reads (relative paths of a config resolve against its folder)."""
    runs = plan_runs(load_config(config), check_files=False)
    commands = comment_commands(config)
    assert len(commands) == len(runs) == 3
    for run, command in zip(runs, commands, strict=True):
        assert str((config.parent / saved_path(command)).resolve()) == run.weights
        assert command == save_command(run.model, saved_path(command)), "the recipe's own form, for this backbone"
    assert "in this file's folder" in config.read_text(encoding="utf-8")


@pytest.mark.filterwarnings("ignore:The default weight initialization of inception_v3:FutureWarning")
@pytest.mark.parametrize("model", MODELS)
def test_what_the_command_writes_is_accepted_by_the_loader(model, tmp_path, monkeypatch):
    """The command's Python, its download swapped for the constructor without weights, run in a fresh folder:
    it makes the missing folder, and the file passes the arm's own read and architecture check."""
    code = save_code(model, "weights/model.pth")
    offline = code
    for online, local in OFFLINE.items():
        offline = offline.replace(online, local)
    assert offline != code, "the command downloads exactly one way the test knows"
    monkeypatch.chdir(tmp_path)
    exec(compile(offline, "<recipe>", "exec"), {})  # noqa: S102  (the project's own recipe text)
    state = load_checked(get_backbone(model), tmp_path / "weights" / "model.pth")
    assert any(k.startswith(get_backbone(model).ignored_prefixes) for k in state), "the file as published: head too"
