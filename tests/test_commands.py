"""The command layer: each `nas` command is a typed function that Python code calls without the command line's
parser, and `nas.cli` is the one module that turns parsed flags into those calls."""

import inspect
import json
import re

import numpy as np
import pytest
import yaml
from conftest import ROOT

from nas.cli import COMMANDS, build_parser
from nas.errors import UserError
from nas.evaluate.train_command import train_command
from nas.export import export_command
from nas.model.describe import inspect_command
from nas.predict.command import predict_command
from nas.report import report_command
from nas.run.driver import resume_command, search_command
from nas.run.runlog import ranked, read_results

SMOKE = ROOT / "search_configs" / "smoke.yaml"
# What a module would have if it took parsed flags: a `Namespace`, or argparse itself.
TAKES_FLAGS = re.compile(r"\bNamespace\b|^\s*(import|from) argparse\b", re.MULTILINE)


def test_search_then_resume_then_report_called_from_python(tmp_path, capsys):
    run = tmp_path / "run"
    assert search_command(SMOKE, run_dir=run, workers=0, max_evaluations=40) == 0
    assert "search paused" in capsys.readouterr().out
    assert len(read_results(run / "evaluations.jsonl")) == 40

    assert resume_command(run, workers=0) == 0
    assert "search finished: 200 evaluations (160 new)" in capsys.readouterr().out
    assert len(read_results(run / "evaluations.jsonl")) == 200

    assert report_command(run) == 0
    printed = capsys.readouterr().out
    for name in ("progress.png", "pareto.png", "best.png", "summary.md"):
        assert (run / "report" / name).is_file() and str(run / "report" / name) in printed


def test_export_then_inspect_and_predict_called_from_python(tmp_path, capsys):
    run = tmp_path / "run"
    assert search_command(SMOKE, run_dir=run, workers=0) == 0
    results = ranked(read_results(run / "evaluations.jsonl"))
    out = tmp_path / "second"
    assert export_command(run, out=out, rank=2) == 0  # a synthetic search trains nothing: no model file
    assert str(out / "architecture.yaml") in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["architecture.yaml"]
    provenance = yaml.safe_load((out / "architecture.yaml").read_text())["provenance"]
    assert (provenance["rank"], provenance["key"], provenance["params"]) == (2, results[1].key, results[1].params)

    assert inspect_command(out / "architecture.yaml", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["params"] == results[1].params

    images = tmp_path / "x.npy"
    np.save(images, np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(UserError, match="holds no model.pt2 or model.ts or model.onnx"):
        predict_command(out, [images], as_json=True, batch_size=2)


def test_bad_input_reaches_a_python_caller_as_user_error(tmp_path):
    """What the command line prints as one line with exit 2 is the `UserError` itself to Python code."""
    with pytest.raises(UserError, match="is not a run directory"):
        export_command(tmp_path / "absent")
    with pytest.raises(UserError, match="--cv loco needs dataset.name bbbc021"):
        train_command(ROOT / "examples" / "densenet_small.yaml", SMOKE, cv="loco")


def subparsers(parser):
    """Each subcommand's parser by its key in `COMMANDS` ("data summary" for `nas data summary`)."""
    found = {}
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            if sub._subparsers is None:
                found[name] = sub
            else:
                found.update({f"{name} {key}": value for key, value in subparsers(sub).items()})
    return found


def test_every_parsed_argument_is_a_parameter_of_its_command_with_the_same_default():
    parsers = subparsers(build_parser())
    assert set(parsers) == set(COMMANDS)
    for name, command in COMMANDS.items():
        # `-v` may follow any subcommand, but it sets the logging `main` does, not a command's parameter
        actions = {a.dest: a for a in parsers[name]._actions if a.dest not in ("help", "verbose")}
        assert set(actions) == set(command.arguments), name
        params = inspect.signature(command.function()).parameters
        assert set(params) == set(command.arguments), name
        for dest, action in actions.items():
            default = params[dest].default
            if action.required:
                assert default is inspect.Parameter.empty, (name, dest)
            else:
                assert default == action.default, (name, dest)


def test_no_module_but_the_command_line_sees_argparse():
    """Domain packages take typed parameters: only nas/cli.py parses flags or handles a `Namespace`."""
    found = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "nas").rglob("*.py"))
        if path != ROOT / "nas" / "cli.py" and TAKES_FLAGS.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_check_finds_a_module_that_takes_parsed_flags():
    assert TAKES_FLAGS.search("def f(args: argparse.Namespace) -> int: ...")
    assert TAKES_FLAGS.search("x = 1\nfrom argparse import ArgumentParser\n")
    assert not TAKES_FLAGS.search("from types import SimpleNamespace\n")


def test_a_path_parameter_takes_a_path_or_a_string(capsys):
    space = ROOT / "encodings" / "densenet_small.yaml"
    assert inspect_command(space) == 0
    as_path = capsys.readouterr().out
    assert inspect_command(str(space)) == 0
    assert capsys.readouterr().out == as_path
