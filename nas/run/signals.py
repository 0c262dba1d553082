"""SIGINT/SIGTERM handling that never tears a write: stop between writes, not inside one.

Outside a critical section a signal raises `Interrupted` at once (abandoning a training in flight, which the
log does not hold yet and resume will redo). Inside one (a log append, a checkpoint) the signal is remembered
and raised when the section ends, so the file being written is complete. The exit code is 128 + signal number
(130 for SIGINT, 143 for SIGTERM), as shells expect.
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


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

    def __init__(self) -> None:
        self.depth = 0
        self.pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "SignalGuard":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.depth:
            self.pending = signum
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
