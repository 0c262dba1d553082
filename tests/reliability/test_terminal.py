"""The terminal: what a person watching `nas search` on a terminal sees on stderr (the progress bar is drawn
only there, so these tests give the real process a pseudo-terminal).

A log record written while the bar is on screen must get a line of its own, not be glued to the bar's line;
a search that stops before its budget must not leave an ETA that will never come true; the bar's last `best=`
and the console's step numbers must say what the log and `summary.md` say.
"""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import yaml
from reliability_runs import ROOT, THREADS_ENV, best, log_lines, synthetic_config

BAR = re.compile(r"search:\s+\d+%\|")


def on_a_terminal(*argv: str, timeout: float = 240) -> tuple[int, list[str]]:
    """Run `nas ARGV` with stderr on a pseudo-terminal; the exit code and every screen line (a carriage return
    starts a redraw of the same line, so each redraw counts as a line)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **THREADS_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "nas", *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=follower, stdin=subprocess.DEVNULL)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    code = proc.wait(timeout=timeout)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\x1b[A", "\n")
    return code, [part for line in text.split("\n") for part in line.split("\r") if part.strip()]


def converging_config(folder: Path) -> Path:
    """A search space of 4 genomes under a budget of 100: it logs the "converged" warning with the bar drawn."""
    cfg = synthetic_config(folder, evaluations=100)
    data = yaml.safe_load(cfg.read_text())
    data["search"]["strategy"] = "ga"
    data["search"]["architecture"] = [{"layers": 1, "growth_rate": 4}] * 2
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def test_a_warning_during_the_bar_gets_a_line_of_its_own(tmp_path, record_property):
    """A search that logs a warning while its bar is on screen (converged): the warning starts its own line."""
    code, lines = on_a_terminal("search", str(converging_config(tmp_path)), "--run-dir", str(tmp_path / "run"),
                                "--workers", "0")  # fmt: skip
    assert code == 0, lines[-10:]
    assert any(BAR.search(line) for line in lines), lines[-10:]
    warnings = [line for line in lines if "converged" in line]
    assert warnings, lines[-10:]
    for line in warnings:
        assert re.match(r"^\s*\d\d:\d\d:\d\d WARNING ", line), f"a warning shares the bar's line: {line!r}"
    record_property("tried", len(warnings))


def test_a_paused_search_leaves_no_stale_eta(tmp_path, record_property):
    """A search stopped by --max-evaluations before its budget: its bar's last drawing says paused, with no ETA."""
    cfg = synthetic_config(tmp_path, evaluations=40)
    code, lines = on_a_terminal("search", str(cfg), "--run-dir", str(tmp_path / "run"), "--workers", "0",
                                "--max-evaluations", "9")  # fmt: skip
    assert code == 0, lines[-10:]
    bars = [line for line in lines if BAR.search(line)]
    assert bars, lines[-10:]
    assert "paused" in bars[-1] and "<" not in bars[-1], f"the last bar drawn: {bars[-1]!r}"
    record_property("tried", 1)


STEP_LINE = re.compile(r"INFO step (\d+): ")
BEST = re.compile(r"best=(\d\.\d{4})")


def test_the_bar_ends_on_the_runs_best_and_the_console_numbers_steps_as_the_log(tmp_path, record_property):
    """Searches whose last batch the budget cuts short (23 and 40 evaluations in batches of about 6): the bar's last
    best= is the run's best fitness, the console's step lines count from 0 as the log's steps do, and the search
    ends checkpointed, so its report counts no evaluation outside the wall time."""
    tried = 0
    for evaluations in (23, 40):
        cfg = synthetic_config(tmp_path, evaluations=evaluations)
        run = tmp_path / f"run{evaluations}"
        code, lines = on_a_terminal("search", str(cfg), "--run-dir", str(run), "--workers", "0")
        assert code == 0, lines[-10:]
        shown = [m[1] for line in lines if (m := BEST.search(line))]
        assert shown and shown[-1] == f"{best(run)[1]:.4f}", (shown[-3:], best(run))
        told = [int(m[1]) for line in lines if (m := STEP_LINE.search(line))]
        logged = sorted({r["step"] for r in log_lines(run)})
        assert told == list(range(len(told))) and set(told) <= set(logged), (told, logged)
        checkpoint = yaml.safe_load((run / "checkpoint.json").read_text())
        assert checkpoint["evaluations"] == len(log_lines(run)) == evaluations
        tried += 1
    record_property("tried", tried)
