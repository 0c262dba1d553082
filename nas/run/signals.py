"""SIGINT/SIGTERM handling that never tears a write: stop between writes, not inside one.

Two modes. Immediate (the in-process evaluator): outside a critical section a signal raises `Interrupted` at
once (abandoning a training in flight, which the log does not hold yet and resume will redo); inside one (a
log append, a checkpoint) the signal is remembered and raised when the section ends, so the file being written
is complete. Deferred (Ray): the handler only remembers the signal, and the driver raises it at its next safe
point (`check()`: between results, between batches, and in the evaluator's wait loop, which wakes at least once
a second). An exception raised from a handler while the main thread is inside Ray's compiled code (`ray.wait`,
`ray.get`, `ray.init`) does not arrive as itself: Ray wraps it in a `SystemError`, the stop looked like a crash
and printed a traceback. The exit code is 128 + signal number (130 for SIGINT, 143 for SIGTERM), as shells
expect.

`ray.init` replaces the SIGTERM handler with its own (`sys.exit(15)`), so the driver calls `install()` again
once Ray is connected.
"""

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# What `signal.signal` takes and returns: a Python handler, SIG_DFL or SIG_IGN, or None (a handler that was not
# installed from Python)
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Interrupted(BaseException):
    """Raised by the signal handler. A BaseException, like KeyboardInterrupt, so that an objective's `except
    Exception` (which turns a failing training into a failed result) never records the user's stop as a failed
    candidate: the interrupted candidate is not logged, and resume trains it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalGuard:
    """Installs handlers for SIGINT and SIGTERM for the lifetime of a `with` block."""

    def __init__(self, deferred: bool = False) -> None:
        self.depth = 0
        self.deferred = deferred
        self.pending: int | None = None
        self._previous: dict[int, Handler] = {}

    def __enter__(self) -> "SignalGuard":
        self.install()
        return self

    def install(self) -> None:
        """(Re)install the handlers; the first call remembers the ones to restore on exit."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)

    def check(self) -> None:
        """A safe point: raise the signal that arrived since, if any (never inside a critical section)."""
        if self.pending is not None and not self.depth:
            raise Interrupted(self.pending)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.depth or self.deferred:
            self.pending = self.pending or signum
        else:
            raise Interrupted(signum)

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Defer signals until the enclosed write is complete."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            raise Interrupted(self.pending)
