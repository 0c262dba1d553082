"""The one exception type that means "the user gave us bad input".

The command line turns a `UserError` into a single line on stderr and exit code 2; every other exception is a
bug (exit 1, traceback). Raising this anywhere below the CLI is how a module says "the input is wrong, and
here is exactly which part".
"""

import reprlib


class UserError(Exception):
    """Bad input (config, file, flag). `str(err)` is the one line the user sees."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


def shown(value: object, limit: int = 40) -> str:
    """`value` as a short repr for an error line: bounded in depth and length whatever the input holds.

    A plain `repr` walks the whole value, and a YAML alias bomb (nested lists sharing one node, a billion
    items) would take minutes and gigabytes to print; `reprlib` stops after a few items a level.
    """
    brief = reprlib.Repr()
    brief.maxlevel, brief.maxlist, brief.maxdict, brief.maxstring, brief.maxother = 3, 4, 4, limit, limit
    text = brief.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


LINE_CHARS = 1000


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """`text` on one line and at most `limit` characters, its middle cut out: the last defence against an
    echoed value nobody shortened (an error line of a million characters helps no one)."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    half = (limit - 5) // 2
    return f"{line[:half]} ... {line[-half:]}"


def os_reason(exc: OSError) -> str:
    """An operating-system error in a few words ("No space left on device"), whatever it carries."""
    return exc.strerror or str(exc) or type(exc).__name__
