"""A process's host memory: reading what it holds, and handing the heap a finished candidate freed back.

Reading (`process_memory`): Linux's `/proc/<pid>/smaps_rollup` and `/proc/<pid>/status`. RSS counts every
resident page the process maps, shared ones included: the pages of torch's and CUDA's libraries (the same
page-cache pages in every worker of a node) and the object store's shared memory (the dataset, one copy per
node) count in full in the RSS of each worker that touched them. USS (private pages only) is what one more worker
adds to a node; PSS splits each shared page between the processes that map it, so PSS summed over the processes
of a node is what the node holds.

Releasing (`release_host_memory`): a worker is reused from one candidate to the next, and glibc keeps the heap
pages a finished candidate freed (activations, gradients, the predictions of a large evaluation batch) mapped
for the next allocation, so an idle worker kept the high-water mark of the largest candidate it had trained.
`malloc_trim(0)` returns the free pages of every arena to the system (a few to tens of ms, against the seconds a
candidate trains). Where the C library has no `malloc_trim` (musl, macOS) only the garbage collection is done.
"""

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory in MiB (see the module docstring for what each figure counts)."""

    rss: float
    uss: float
    pss: float
    rss_anon: float  # private heap and anonymous mappings
    rss_file: float  # mapped files: the libraries' code and data
    rss_shmem: float  # shared memory: Ray's object store pages this process touched


def smaps_rollup_kib(text: str) -> dict[str, int]:
    """`Field: N kB` lines of `/proc/<pid>/smaps_rollup` or `/proc/<pid>/status` as {field: KiB}."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[name.strip()] = int(parts[0])
    return out


def process_memory(pid: int | str = "self") -> ProcessMemory | None:
    """The memory of process `pid`, or None where it is gone or `/proc` cannot say (not Linux, another user)."""
    try:
        rollup = smaps_rollup_kib((PROC / str(pid) / "smaps_rollup").read_text())
        status = smaps_rollup_kib((PROC / str(pid) / "status").read_text())
    except OSError:
        return None
    if "Rss" not in rollup:
        return None
    mib = 1024.0
    return ProcessMemory(
        rss=rollup["Rss"] / mib,
        uss=(rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)) / mib,
        pss=rollup.get("Pss", 0) / mib,
        rss_anon=status.get("RssAnon", 0) / mib,
        rss_file=status.get("RssFile", 0) / mib,
        rss_shmem=status.get("RssShmem", 0) / mib,
    )


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_host_memory() -> None:
    """Collect garbage cycles, then hand the free pages of the C heap back to the system (module docstring)."""
    gc.collect()
    trim = malloc_trim()
    if trim is not None:
        trim(0)
