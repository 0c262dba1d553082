"""How many threads torch trains with: the cores this process was given, never the machine's count.

torch starts with one thread per core of the machine, whatever share of it the process has: a training
process asked for 1 CPU (`resources.cpus_per_trial`), pinned to a few cores (the affinity mask), or under a
container's CPU quota spins that many threads against its neighbours, and on a loaded 2-core machine a digits
training took 101.7 s instead of 3.0 s. Every training path (`nas train`, the in-process evaluator, each Ray
task) sets the count from `given_cores` before it trains.

An explicit `OMP_NUM_THREADS` in the environment is the user's choice (and what Ray sets for a task from its
`num_cpus`): it is kept.
"""

import math
import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def affinity_cores() -> int:
    """Cores this process may run on (the affinity mask; all of them where the OS has no such call)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def quota_cores(path: Path = CPU_MAX) -> int | None:
    """The container's CPU quota in whole cores (rounded up), None when there is none or it cannot be read."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def given_cores(cpus_per_trial: float | None) -> int:
    """The threads to train with: `cpus_per_trial` (at least 1), within the affinity mask and the quota."""
    limits = [affinity_cores()]
    if cpus_per_trial is not None:
        limits.append(max(1, math.floor(cpus_per_trial)))
    quota = quota_cores()
    if quota is not None:
        limits.append(quota)
    return min(limits)


def use_given_cores(cpus_per_trial: float | None) -> int:
    """Set torch's thread count to `given_cores` (unless `OMP_NUM_THREADS` says otherwise); returns the count."""
    import torch

    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return torch.get_num_threads()
    threads = given_cores(cpus_per_trial)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
