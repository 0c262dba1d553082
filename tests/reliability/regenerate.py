"""Run the reliability suite and write RELIABILITY.md from what it recorded: `make reliability`.

    .venv/bin/python tests/reliability/regenerate.py [--out RELIABILITY.md] [pytest args...]

pytest runs `tests/reliability` with a JUnit XML report; each test records how many cases it tried with
`record_property("tried", n)` (and may state what must hold with `record_property("holds", text)`, else the group's
rule applies), and its docstring's first paragraph says what is tried. The table has one row per test function
(parametrized variants folded into one row), grouped by module (kills, workers and nodes, disk, corrupt state,
hostile input, resources and exactness, terminal, security), with the result: held, FAILED with the first line of
the failure, known gap (an expected failure, with its reason) or skipped. The file is written atomically (temp file
and rename), so a run that is interrupted leaves the previous figures intact. The exit status is pytest's, so a
failing row also fails this command.
"""

import argparse
import ast
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nas.atomicfile import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "reliability"

# Module -> (group title, what must hold), in the order of the table.
GROUPS = {
    "test_kills": ("Kills", "no finished evaluation lost or trained twice; the log parses; the best equals the "
                   "uninterrupted run's"),
    "test_worker_faults": ("Workers and nodes", "the search completes; each fault is logged as failed, retried "
                           "or timeout"),
    "test_disk_faults": ("Disk", "a clear one-line error; the previous checkpoint intact; resumable once the disk "
                         "is back"),
    "test_corrupt_state": ("Corrupt state", "a clear error or a recovery from the previous checkpoint; nothing "
                           "finished is lost"),
    "test_hostile_input": ("Hostile input", "exit 2, one line naming the problem (the key path), no traceback, "
                           "nothing executed, no run directory made"),
    "test_resources": ("Resources and exactness", "a network too big to build is refused in one line from its "
                       "analytic cost before anything is allocated; training uses the cores it was given; the "
                       "network's widths are exact"),
    "test_terminal": ("Terminal", "a log line never shares the progress bar's line; a search that stops early "
                      "shows no stale ETA"),
    "test_security": ("Security", "YAML by safe_load, weights by weights_only=True, no pickle in a run "
                      "directory, Ray behind the token"),
}  # fmt: skip


@dataclass
class Row:
    """One test function: its cases summed over parametrized variants, and its worst result."""

    module: str
    name: str
    doc: str = ""
    holds: str = ""
    tried: int = 0
    variants: int = 0
    results: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def result(self) -> str:
        failed = [r for r in self.results if r.startswith("FAILED")]
        if failed:
            return failed[0]
        if any(r.startswith("known gap") for r in self.results):
            return next(r for r in self.results if r.startswith("known gap"))
        if self.results and all(r == "skipped" for r in self.results):
            return "skipped"
        return "held"


def docstrings() -> dict[tuple[str, str], str]:
    """First docstring line of every test function in the suite, by (module, function)."""
    out = {}
    for path in sorted(SUITE.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                doc = ast.get_docstring(node) or ""
                paragraph = doc.split("\n\n")[0]
                out[(path.stem, node.name)] = " ".join(paragraph.split())
    return out


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return " ".join(line.split())[:400]
    return ""


def parse_junit(path: Path) -> list[Row]:
    """Rows from pytest's JUnit XML (classname `tests.reliability.test_x`, name `test_y[param]`)."""
    docs = docstrings()
    rows: dict[tuple[str, str], Row] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "").split("[", 1)[0]
        row = rows.setdefault((module, name), Row(module, name, docs.get((module, name), "")))
        row.variants += 1
        row.seconds += float(case.get("time", 0) or 0)
        tried = [p.get("value") for p in case.iter("property") if p.get("name") == "tried"]
        holds = [p.get("value") for p in case.iter("property") if p.get("name") == "holds"]
        row.holds = row.holds or (holds[0] if holds else "")
        row.tried += int(float(tried[0])) if tried and tried[0] not in (None, "") else 0
        row.results.append(outcome(case))
    for row in rows.values():
        if row.tried == 0:
            row.tried = row.variants  # a test that records nothing tried one case per variant
    return sorted(rows.values(), key=lambda r: (list(GROUPS).index(r.module) if r.module in GROUPS else 99, r.name))


def outcome(case: ET.Element) -> str:
    for tag in ("failure", "error"):
        element = case.find(tag)
        if element is not None:
            return "FAILED: " + (first_line(element.get("message")) or first_line(element.text) or tag)
    skipped = case.find("skipped")
    if skipped is not None:
        message = skipped.get("message") or ""
        if skipped.get("type") == "pytest.xfail" or message.startswith("xfail"):
            return "known gap: " + first_line(message.removeprefix("xfail").strip(" :-"))
        return "skipped"
    return "held"


def machine() -> str:
    try:
        import torch

        torch_version = torch.__version__
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        torch_version, gpu = "not installed", "no GPU"
    return (f"{os.cpu_count()} CPU cores, {gpu}, Python {platform.python_version()}, torch {torch_version}, "
            f"{platform.system()} {platform.machine()}")  # fmt: skip


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], seconds: float, exit_code: int) -> str:
    held = sum(r.result == "held" for r in rows)
    failed = [r for r in rows if r.result.startswith("FAILED")]
    gaps = [r for r in rows if r.result.startswith("known gap")]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability",
        "",
        "What the reliability suite (`tests/reliability/`, part of `make test`) tries in order to break evonas, what",
        "must hold each time, and the latest figures. Regenerate with `make reliability`",
        "(`.venv/bin/python tests/reliability/regenerate.py`); do not edit by hand.",
        "",
        f"- Date: {date}",
        f"- Machine: {machine()}",
        f"- Total runtime: {seconds:.0f} s (pytest exit status {exit_code})",
        f"- Tests: {len(rows)}; held {held}; failed {len(failed)}; known gaps {len(gaps)}; "
        f"cases tried {sum(r.tried for r in rows):,}",
        "",
    ]
    for module in [*GROUPS, *sorted({r.module for r in rows} - set(GROUPS))]:
        group = [r for r in rows if r.module == module]
        if not group:
            continue
        title, must = GROUPS.get(module, (module, ""))
        lines += [f"## {title}", ""]
        if must:
            lines += [f"Must hold: {must}.", ""]
        lines += ["| test | what is tried | how many | what must hold | result | seconds |"]
        lines += ["|---|---|---:|---|---|---:|"]
        for r in group:
            holds = cell(r.holds) if r.holds else "as above"
            lines.append(f"| `{r.name}` | {cell(r.doc)} | {r.tried:,} | {holds} | {cell(r.result)} | {r.seconds:.1f} |")
        lines.append("")
    missing = [GROUPS[m][0] for m in GROUPS if not any(r.module == m for r in rows)]
    if missing:
        lines += [f"Not in the suite yet: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "RELIABILITY.md"))
    args, pytest_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "reliability.xml"
        start = time.monotonic()
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE.relative_to(ROOT)),
                   f"--junitxml={junit}", "-o", "junit_family=xunit1", *pytest_args]  # fmt: skip
        code = subprocess.run(command, cwd=ROOT).returncode
        seconds = time.monotonic() - start
        if not junit.exists():
            print(f"pytest wrote no report (exit {code}); {args.out} left as it was", file=sys.stderr)
            return code or 1
        rows = parse_junit(junit)
    atomic_write_text(Path(args.out), render(rows, seconds, code))
    print(f"wrote {args.out}: {len(rows)} tests", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
