"""`nas`: the command line. Parses flags, dispatches to one function per command, and owns the exit codes.

Exit codes (DESIGN.md section 2): 0 done; 2 bad input, as one line on stderr naming the problem (for configs,
the key path) and never a traceback; 1 anything else; 130/143 after SIGINT/SIGTERM. Each command lives next
to its concept and is imported only when run, so `nas inspect` does not pay for importing Ray.
"""

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from nas.errors import UserError, one_line

COMMANDS = {
    "search": "nas.run.driver:search_command",
    "resume": "nas.run.driver:resume_command",
    "inspect": "nas.model.describe:inspect_command",
    "train": "nas.evaluate.train_command:train_command",
    "export": "nas.export:export_command",
    "baseline": "nas.transfer.command:baseline_command",
    "data": "nas.data.summary:summary_command",
    "report": "nas.report:report_command",
    "predict": "nas.predict.command:predict_command",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit 2 (argparse's own exit code for usage errors)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {one_line(message)}\n")
        raise SystemExit(2)


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nas", description="Evolutionary neural architecture search (hybrid GA-PSO).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("search", help="start a new search from a config")
    p.add_argument("config")
    p.add_argument("--run-dir", help="run directory (default: runs/<name>-<time>); must be empty or absent")
    p.add_argument("--seed", type=non_negative, help="override the config's seed")
    p.add_argument("--workers", type=non_negative, help="concurrent candidates; 0 = in-process evaluator")
    p.add_argument("--ray-address", help="an existing Ray cluster ('auto' or ray://host:port)")
    p.add_argument("--max-evaluations", type=positive, help="stop cleanly after N new evaluations")

    p = sub.add_parser("resume", help="continue a search from its checkpoint and log")
    p.add_argument("run_dir")
    p.add_argument("--workers", type=non_negative, help="concurrent candidates; 0 = in-process evaluator")
    p.add_argument("--ray-address", help="an existing Ray cluster ('auto' or ray://host:port)")
    p.add_argument("--max-evaluations", type=positive, help="stop cleanly after N new evaluations")

    p = sub.add_parser("inspect", help="describe an architecture or search-space file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("train", help="train one architecture with a config's dataset and fitness settings")
    p.add_argument("architecture")
    p.add_argument("--config", required=True)
    p.add_argument("--epochs", type=positive, help="override fitness.epochs")
    p.add_argument("--full", action="store_true", help="train on the whole training split, report test")
    p.add_argument("--save", help="write weights.pt, model.ts, preprocess.json and metrics.json to this folder")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx to --save (needs the export extra)")
    p.add_argument(
        "--cv",
        choices=["loco", "cell-line"],
        help="cross-validation protocol (BBBC021: loco, leave-one-compound-out; BBBC014: cell-line, both ways)",
    )
    p.add_argument("--seed", type=non_negative, help="override the config's seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("export", help="write the best (or K-th best) architecture of a run")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output folder (default RUN_DIR/export)")
    p.add_argument("--rank", type=positive, default=1, help="1 = best")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (needs the export extra)")

    p = sub.add_parser("baseline", help="the pretrained-transfer arm on the config's dataset")
    p.add_argument("config")
    p.add_argument("--run-dir", help="where baseline/<model>/ goes (default runs/<name>-baseline)")
    p.add_argument("--epochs", type=positive, help="override baseline.epochs")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, parser_class=OneLineParser)
    s = data_sub.add_parser("summary", help="what a dataset config resolves to")
    s.add_argument("config")
    s.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("report", help="plots and a Markdown summary under RUN_DIR/report/")
    p.add_argument("run_dir")

    p = sub.add_parser("predict", help="a trained network on images, an image folder or a config's test split")
    p.add_argument("model_dir", help="a folder from `nas train --save` or `nas export` (or its model file)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, .npy arrays, folders, or a config")
    p.add_argument("--out", help="write one CSV row per image to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--batch-size", type=positive, default=256, help="images per forward pass (default 256)")
    p.add_argument("--format", choices=["auto", "torchscript", "onnx"], default="auto",
                   help="which model file to run (auto: model.ts, else model.onnx)")  # fmt: skip
    return parser


def run_command(args: argparse.Namespace) -> int:
    module_name, func_name = COMMANDS[args.command].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(args) or 0)


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
