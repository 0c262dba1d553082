"""The strategy's random number generator: its JSON-safe state, and lending it to DEAP's operators.

Every strategy owns one `random.Random(seed)` and draws nothing from anywhere else, so a run is a function of
its seed and the fitness values it is told. DEAP's tools (`selTournament`, `cxTwoPoint`, `mutFlipBit`,
`varAnd`) draw from Python's module-level `random` instead; `lend_to_global` runs them on the strategy's stream
and hands the caller's global state back untouched, which keeps a run reproducible and resumable whatever else
in the process uses `random`. The swap is not thread-safe: strategies are driven from one thread.
"""

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def lend_to_global(rng: random.Random) -> Iterator[None]:
    """Inside the block, the global `random` continues `rng`'s stream; after it, `rng` has advanced by
    exactly what was drawn and the global state is what it was before the block."""
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def rng_state(rng: random.Random) -> list[Any]:
    """`rng.getstate()` as nested lists (version, 625 words, gauss_next): survives json.dumps/loads exactly."""
    version, words, gauss_next = rng.getstate()
    return [version, list(words), gauss_next]


def rng_from_state(state: list[Any]) -> random.Random:
    """A generator that continues exactly where the one `rng_state` was taken from stopped."""
    version, words, gauss_next = state
    rng = random.Random()
    rng.setstate((version, tuple(words), gauss_next))
    return rng
