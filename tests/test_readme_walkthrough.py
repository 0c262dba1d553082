"""README's "Search on your own images", run as written: every `console` block of that section is one command
(`$ ` prompt) with what it prints. The commands run through bash in a temporary folder holding a generated
`my_images/` (small PNGs of three colour classes), with the project's `nas` first on PATH and HOME in the
temporary folder (the dataset cache goes there); nothing of a command is substituted. A block whose output shows
`^C` is interrupted with SIGINT once the first evaluation is logged, as a user's Ctrl-C would.

Each shown output line is checked by its leading words (those before the first word with a digit or a `...`), so the
README's figures may differ from the run's while the lines themselves must be there; `...` lines are left out.
"""

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from nas.config import load_config
from nas.evaluate.evaluator import LocalEvaluator
from nas.run.driver import make_evaluator

SECTION = "## Search on your own images"
COLOURS = {"blue": (40, 60, 200), "green": (40, 180, 60), "red": (200, 40, 40)}
INTERRUPT = "^C"


@dataclass(frozen=True)
class Step:
    """One console block: the command and the output lines it shows."""

    command: str
    shown: tuple[str, ...]

    @property
    def interrupted(self) -> bool:
        return INTERRUPT in self.shown


def section_text(readme: str) -> str:
    """The section's text, from its heading to the next heading of the same level."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return readme[start : end if end != -1 else len(readme)]


def steps(section: str) -> list[Step]:
    """The section's console blocks, in order; each holds exactly one `$ ` command."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        lines = block.rstrip("\n").split("\n")
        commands = [line for line in lines if line.startswith("$ ")]
        assert len(commands) == 1 and lines[0] == commands[0], f"a console block holds one command first:\n{block}"
        out.append(Step(commands[0][2:], tuple(lines[1:])))
    return out


def leading_words(line: str) -> list[str]:
    """The words of `line` before the first one holding a digit or an elision `...` (at least the first word)."""
    words = line.split()
    lead = []
    for word in words:
        if any(c.isdigit() for c in word) or "..." in word:
            break
        lead.append(word)
    return lead or words[:1]


def key_lines(step: Step) -> list[list[str]]:
    return [leading_words(line) for line in step.shown if line.strip() and not line.startswith(("...", INTERRUPT))]


def write_images(root: Path, per_class: dict[str, int], size: int = 16) -> None:
    """PNGs of three colours under noise: a tiny network tells them apart in a few epochs."""
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name, rgb in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 90, (size, size, 3)) + np.array(rgb) // 2
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")


def run_step(step: Step, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the command through bash; for an interrupted one, SIGINT to its process group after the first
    evaluation is in a run's log."""
    proc = subprocess.Popen(["bash", "-c", step.command], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    if step.interrupted:
        deadline = time.monotonic() + 300
        while not any(p.stat().st_size for p in cwd.glob("runs/*/evaluations.jsonl")):
            assert proc.poll() is None, f"{step.command} ended before its first evaluation: {proc.stdout.read()}"
            assert time.monotonic() < deadline, f"{step.command}: no evaluation within 300 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(step.command, proc.returncode, output)


def section_steps() -> list[Step]:
    return steps(section_text((ROOT / "README.md").read_text()))


def test_the_section_shows_each_command_of_the_walkthrough_once_in_order():
    commands = [s.command.split()[:3] for s in section_steps()]
    assert commands == [
        ["nas", "config", "check"],
        ["nas", "search", "my_images"],
        ["nas", "resume", "runs/my_images"],
        ["nas", "resume", "runs/my_images"],
        ["nas", "export", "runs/my_images"],
        ["nas", "predict", "runs/my_images/export"],
    ]
    assert [s.interrupted for s in section_steps()] == [False, True, False, False, False, False]
    assert all(key_lines(s) for s in section_steps())


def test_leading_words_stop_at_the_first_figure():
    assert leading_words("best fitness 0.8333  params 1") == ["best", "fitness"]
    assert leading_words("ok       dataset   imagefolder: 3 classes") == ["ok", "dataset", "imagefolder:"]
    assert leading_words("accuracy 1.0000 over 12 images") == ["accuracy"]
    assert leading_words("ok  config  .../my_images.yaml: x") == ["ok", "config"]
    assert leading_words("2 things") == ["2"]


def test_the_my_images_config_trains_in_process_unless_told_otherwise():
    """`ray.workers: 0` in the config, with no `--workers`, is the in-process evaluator (a Ray one refuses 0)."""
    config = load_config("my_images")
    assert config.ray.workers == 0 and config.encoding.endswith("densenet_large.yaml")
    assert isinstance(make_evaluator(object(), config, None, None), LocalEvaluator)
    assert isinstance(make_evaluator(object(), config, 0, None), LocalEvaluator)


@pytest.mark.full
@pytest.mark.timeout(900)  # 16 trainings at 64 px: about a minute on 2 idle cores, several on busy ones
def test_the_walkthrough_runs_as_written(tmp_path):
    write_images(tmp_path / "my_images", {"train": 6, "test": 2})
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HOME": str(tmp_path / "home")}  # fmt: skip
    for step in section_steps():
        done = run_step(step, tmp_path, env)
        want = 130 if step.interrupted else 0
        assert done.returncode == want, f"$ {step.command}\nexit {done.returncode}, not {want}:\n{done.stdout}"
        printed = [line.split() for line in done.stdout.splitlines()]
        for words in key_lines(step):
            found = any(line[: len(words)] == words for line in printed)
            assert found, f"$ {step.command}\nno line starting {' '.join(words)!r} in:\n{done.stdout}"
    assert (tmp_path / "runs/my_images/export/model.pt2").is_file()
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[0].startswith("path,label,predicted,p_blue,p_green,p_red")
