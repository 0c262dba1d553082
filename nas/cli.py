"""`nas`: the command line. Parses flags, dispatches to one function per command, and owns the exit codes.

The command layer: each command is a typed function with explicit parameters (`nas.run.driver.search_command`,
`nas.export.export_command`, ...) that returns the exit code, so Python code calls a command without building
an `argparse.Namespace`. This module is the only one that sees a Namespace: `COMMANDS` maps each subcommand to
its function and the parsed arguments it takes, by keyword, each under the same name as the parser's `dest`.
The flags' ranges are checked here, when they are parsed; a command's bad input is a `UserError`, which a
Python caller gets as the exception and `main` turns into one line and exit 2.

Exit codes (DESIGN.md section 2): 0 done; 2 bad input, as one line on stderr naming the problem (for configs,
the key path) and never a traceback; 1 anything else; 130/143 after SIGINT/SIGTERM. Each command lives next
to its concept and is imported only when run, so `nas inspect` does not pay for importing Ray.
"""

import argparse
import dataclasses
import importlib
import logging
import re
import sys
from collections.abc import Callable, Sequence

from nas.config import BaselineConfig, BudgetConfig, Config, FitnessConfig, RayConfig, field_bounds
from nas.errors import UserError, one_line, shown


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand's typed function, as "module:function" (imported only when the command runs), and the parsed
    arguments passed to it by keyword: each name is the `dest` of one of the subcommand's arguments and a
    parameter of the function (tests/test_commands.py checks both)."""

    target: str
    arguments: tuple[str, ...]

    def function(self) -> Callable[..., int]:
        module_name, func_name = self.target.split(":")
        return getattr(importlib.import_module(module_name), func_name)


LAUNCH = ("workers", "ray_address", "max_evaluations")
COMMANDS = {
    "search": Command("nas.run.driver:search_command", ("config_path", "overrides", "run_dir", "seed", *LAUNCH)),
    "resume": Command("nas.run.driver:resume_command", ("run_dir", "budget", *LAUNCH)),
    "inspect": Command("nas.model.describe:inspect_command", ("file", "as_json")),
    "train": Command(
        "nas.evaluate.train_command:train_command",
        ("architecture", "config_path", "overrides", "epochs", "full", "save", "onnx", "cv", "seed", "as_json"),
    ),
    "export": Command("nas.export:export_command", ("run_dir", "out", "rank", "onnx", "pareto")),
    "baseline": Command(
        "nas.transfer.command:baseline_command", ("config_path", "overrides", "run_dir", "epochs", "as_json")
    ),
    "data summary": Command("nas.data.summary:summary_command", ("config_path", "overrides", "as_json")),
    "data fetch": Command(
        "nas.data.fetch:fetch_command", ("dataset", "to", "base_url", "dry_run", "force", "keep_zips")
    ),
    "config schema": Command("nas.config_schema:schema_command", ()),
    "config check": Command("nas.config_check:check_command", ("config_path", "overrides")),
    "report": Command("nas.report:report_command", ("run_dir",)),
    "predict": Command(
        "nas.predict.command:predict_command",
        ("model_dir", "inputs", "out", "as_json", "batch_size", "model_format"),
    ),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit 2 (argparse's own exit code for usage errors)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {one_line(message)}\n")
        raise SystemExit(2)


DECIMAL = re.compile(r"-?[0-9]+")  # ASCII digits only: int() also takes '+5', '1_0', ' 5 ' and other scripts' digits
MAX_RANK = 10**9


def integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a plain decimal integer within [low, high], else one line saying why.

    `int()` alone accepts what nobody means as a count or a seed ('+5', '1_0', '٣', ' 5 ') and raises a bare
    ValueError past 4,300 digits; the range keeps a flag to what the config key it overrides allows."""

    def parse(text: str) -> int:
        if not DECIMAL.fullmatch(text):
            raise argparse.ArgumentTypeError(f"must be a plain decimal integer (digits 0-9), not {shown(text)}")
        digits = text.lstrip("-").lstrip("0")
        if len(digits) > len(str(max(abs(low), abs(high)))):
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got an integer of {len(digits):,} "
                                             "digits")  # fmt: skip
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def config_integer(cls: type, name: str) -> Callable[[str], int]:
    """`integer` held to the range of the config field `name` of `cls` that the flag overrides."""
    return integer(*field_bounds(cls, name))


def non_empty(text: str) -> str:
    """An argparse type for a path or an address: an empty one is a mistake, never "use the default"."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


SET_HELP = (
    "override one config key, as in Hydra: KEY.PATH=VALUE, the value read as YAML (3, 0.1, true, [1, 2], null); "
    "repeat the flag for more keys (--set search.budget.evaluations=50 --set seed=3), a later one wins; "
    "checked like the file"
)


def add_set(parser: argparse.ArgumentParser) -> None:
    """`--set KEY.PATH=VALUE`, repeatable, on a command that loads a config (`nas.config.apply_overrides`)."""
    parser.add_argument("--set", action="append", dest="overrides", metavar="KEY.PATH=VALUE",
                        help=SET_HELP)  # fmt: skip


VERBOSE_HELP = "debug logging on stderr, with one line per finished candidate of a search"


def add_verbose_below(parser: argparse.ArgumentParser) -> None:
    """`-v/--verbose` on every subcommand under `parser`, nested ones included, so that it may also follow the
    subcommand (`nas search -v ...`). There its default is left out of the namespace: a subcommand's default
    would overwrite a `-v` given before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                       help=VERBOSE_HELP)  # fmt: skip
                add_verbose_below(subparser)


def build_parser() -> argparse.ArgumentParser:
    """The parser; each argument's `dest` is the name of the command function's parameter it fills (a `metavar`
    keeps the name that help and errors show where the two differ, as for `config_path`)."""
    seed = config_integer(Config, "seed")
    workers = config_integer(RayConfig, "workers")
    evaluations = config_integer(BudgetConfig, "evaluations")
    parser = OneLineParser(prog="nas", description="Evolutionary neural architecture search (hybrid GA-PSO).")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("search", help="start a new search from a config")
    p.add_argument("config_path", metavar="config", type=non_empty)
    add_set(p)
    p.add_argument(
        "--run-dir", type=non_empty, help="run directory (default: runs/<name>-<time>); must be empty or absent"
    )
    p.add_argument("--seed", type=seed, help="override the config's seed")
    p.add_argument("--workers", type=workers, help="concurrent candidates; 0 = in-process evaluator")
    p.add_argument("--ray-address", type=non_empty, help="an existing Ray cluster ('auto' or ray://host:port)")
    p.add_argument("--max-evaluations", type=evaluations, help="stop cleanly after N new evaluations")

    p = sub.add_parser("resume", help="continue a search from its checkpoint and log")
    p.add_argument("run_dir", type=non_empty)
    p.add_argument("--budget", type=evaluations, metavar="N", help="raise search.budget.evaluations to N (at least "
                   "the current budget) and continue; kept by later resumes (RUN_DIR/budget.json)")  # fmt: skip
    p.add_argument("--workers", type=workers, help="concurrent candidates; 0 = in-process evaluator")
    p.add_argument("--ray-address", type=non_empty, help="an existing Ray cluster ('auto' or ray://host:port)")
    p.add_argument("--max-evaluations", type=evaluations, help="stop cleanly after N new evaluations")

    p = sub.add_parser("inspect", help="describe an architecture or search-space file")
    p.add_argument("file", type=non_empty)
    p.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object")

    p = sub.add_parser("train", help="train one architecture with a config's dataset and fitness settings")
    p.add_argument("architecture", type=non_empty)
    p.add_argument("--config", dest="config_path", metavar="CONFIG", type=non_empty, required=True)
    add_set(p)
    p.add_argument("--epochs", type=config_integer(FitnessConfig, "epochs"), help="override fitness.epochs")
    p.add_argument("--full", action="store_true", help="train on the whole training split, report test")
    p.add_argument(
        "--save", type=non_empty, help="write weights.pt, model.pt2, preprocess.json and metrics.json to this folder"
    )
    p.add_argument("--onnx", action="store_true", help="also write model.onnx to --save (needs the export extra)")
    p.add_argument(
        "--cv",
        choices=["loco", "cell-line"],
        help="cross-validation protocol (BBBC021: loco, leave-one-compound-out; BBBC014: cell-line, both ways)",
    )
    p.add_argument("--seed", type=seed, help="override the config's seed")
    p.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object")

    p = sub.add_parser("export", help="write the best (or K-th best) architecture of a run")
    p.add_argument("run_dir", type=non_empty)
    p.add_argument("--out", type=non_empty, help="output folder (default RUN_DIR/export)")
    p.add_argument("--rank", type=integer(1, MAX_RANK), default=1, help="1 = best")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (needs the export extra)")
    p.add_argument("--pareto", action="store_true", help="every member of the Pareto front, one folder each")

    p = sub.add_parser("baseline", help="the pretrained-transfer arm on the config's dataset")
    p.add_argument("config_path", metavar="config", type=non_empty)
    add_set(p)
    p.add_argument("--run-dir", type=non_empty, help="where baseline/<model>/ goes (default runs/<name>-baseline)")
    p.add_argument("--epochs", type=config_integer(BaselineConfig, "epochs"), help="override baseline.epochs")
    p.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object")

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, parser_class=OneLineParser)
    s = data_sub.add_parser("summary", help="what a dataset config resolves to")
    s.add_argument("config_path", metavar="config", type=non_empty)
    add_set(s)
    s.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object")
    s = data_sub.add_parser("fetch", help="download a dataset's public files and unpack them where its loader "
                            "reads them (resumable; says the disk it needs first)")  # fmt: skip
    s.add_argument("dataset", choices=["bbbc021"])
    s.add_argument("--to", type=non_empty, required=True, help="folder to fill; then set dataset.root to it")
    s.add_argument("--base-url", type=non_empty, help="a mirror of the files (default: the Broad Institute's)")
    s.add_argument("--dry-run", action="store_true", help="list what would be fetched and unpacked, fetch nothing")
    s.add_argument("--force", action="store_true", help="go on even when the free disk space looks too small")
    s.add_argument("--keep-zips", action="store_true", help="keep each plate archive after unpacking it")

    p = sub.add_parser("config", help="config tools")
    config_sub = p.add_subparsers(dest="config_command", required=True, parser_class=OneLineParser)
    config_sub.add_parser("schema", help="print the config's JSON Schema (draft 2020-12), for editors and docs")
    c = config_sub.add_parser("check", help="a dry run: the config, its space, its data, its Ray address and one "
                              "training step, a line each; exit 2 on any problem")  # fmt: skip
    c.add_argument("config_path", metavar="config", type=non_empty, help="a config file or a shipped config's name")
    add_set(c)

    p = sub.add_parser("report", help="plots and a Markdown summary under RUN_DIR/report/")
    p.add_argument("run_dir", type=non_empty)

    p = sub.add_parser("predict", help="a trained network on images, an image folder or a config's test split")
    p.add_argument(
        "model_dir", type=non_empty, help="a folder from `nas train --save` or `nas export` (or its model file)"
    )
    p.add_argument(
        "inputs", nargs="+", type=non_empty, metavar="INPUT", help="image files, .npy arrays, folders, or a config"
    )
    p.add_argument("--out", type=non_empty, help="write one CSV row per image to this file")
    p.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object")
    p.add_argument(
        "--batch-size",
        type=config_integer(FitnessConfig, "eval_batch_size"),
        default=256,
        help="images per forward pass (default 256)",
    )
    p.add_argument("--format", choices=["auto", "pt2", "torchscript", "onnx"], default="auto", dest="model_format",
                   help="which model file to run (auto: model.pt2, else model.ts, else model.onnx)")  # fmt: skip
    add_verbose_below(parser)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """The key of `COMMANDS` the parsed arguments name: the subcommand, with its own subcommand for a group of
    them (`data summary`, `config schema`), parsed into `<group>_command`."""
    nested = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {nested}" if nested else args.command


def run_command(args: argparse.Namespace) -> int:
    command = COMMANDS[command_name(args)]
    return command.function()(**{name: getattr(args, name) for name in command.arguments})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        return run_command(args)
    except UserError as exc:
        sys.stderr.write(f"nas {args.command}: error: {one_line(str(exc))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("nas: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
