"""Connecting this process to Ray: an embedded local Ray, or an existing cluster at an address.

Which one (DESIGN.md section 5):
- This process is already a Ray driver (`ray.is_initialized()`, e.g. inside a Ray Job or a test that started
  Ray): use that connection and leave it open on close, as Ray Tune does.
- An address (`ray.address` in the config, `--ray-address`, else the `RAY_ADDRESS` variable that Ray Jobs and
  `ray job submit` set): connect to that cluster with `ray.init(address=...)`. `auto` finds the cluster this
  machine belongs to (run it on the head node), `ray://host:port` goes through Ray Client, and a bare
  `host:port` is the head's GCS address. A malformed or unreachable address is a one-line `UserError`.
- No address: start an embedded Ray private to this process (`address="local"`, never attaching to someone
  else's instance on the machine), shut down when the evaluator closes (and by Ray's own exit hook otherwise).

`ray.runtime_env` (`nas.evaluate.runtime_env`, checked before anything starts) goes to `ray.init` in both of the
last two cases, so the workers of this search run in it. A process that is already a driver keeps the runtime
environment it was given (a Ray Job's `--runtime-env`), and the config's is ignored with a warning.

The embedded Ray and security. Ray 2.60 turns token authentication on for every new local cluster unless
`RAY_AUTH_MODE` is set: `ray.init` sets `RAY_AUTH_MODE=token` in this process (its workers inherit it), creates
`~/.ray/auth_token` if absent, and from then on every gRPC and HTTP entry point (GCS, raylets, dashboard)
rejects a request without that token. We never set `RAY_AUTH_MODE=disabled`; a user who exported it has opted
out on purpose, and gets a warning. The dashboard is off unless `ray.dashboard: true`, and then binds to
127.0.0.1 only. Ray 2.60 has no option to bind its internal gRPC ports (GCS, raylet, object manager) to the
loopback interface: they listen on all interfaces, and the token is what keeps other hosts out.
"""

import contextlib
import logging
import math
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nas.config import RayConfig, ResourcesConfig
from nas.errors import UserError
from nas.evaluate.runtime_env import check_runtime_env

log = logging.getLogger(__name__)

ADDRESS_KEY = "ray.address"
HOST_PORT = r"[A-Za-z0-9.\-_]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}"
ADDRESS_FORMS = re.compile(rf"auto|ray://(?:{HOST_PORT})|(?:{HOST_PORT})")
CONNECT_TIMEOUT_S = 5.0
AUTH_SETUP_LOGGER = "ray._private.authentication.authentication_token_setup"
START_ATTEMPTS = 3
STARTUP_TIMED_OUT = "timed out during startup"  # Ray's message when its raylet did not register in time


@dataclass
class RayConnection:
    """How this process is attached to Ray; `close()` shuts Ray down only if this process started it here."""

    address: str
    embedded: bool
    owned: bool
    dashboard_url: str | None = None

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()
        self.owned = False


def connect(ray_config: RayConfig, resources: ResourcesConfig, workers: int | None = None) -> RayConnection:
    """Attach to Ray as the module docstring describes; `workers` sizes an embedded Ray's CPUs."""
    with sigterm_handler_kept():
        return attach(ray_config, resources, workers)


@contextlib.contextmanager
def sigterm_handler_kept() -> Iterator[None]:
    """Keep this process's own SIGTERM handler while Ray starts or connects.

    `ray.init` (and the embedded node it starts) installs a SIGTERM handler that kills the node's processes and
    calls `sys.exit`, so a SIGTERM while Ray starts ended the command with exit 15 (or 1) and no summary. When
    the caller has a handler of its own (the driver's signal guard, which stops cleanly and shuts Ray down
    itself), Ray's registration is skipped for the duration of the call, and the handler is restored after it.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, signal.SIG_IGN, None):
        yield
        return
    import ray._private.utils as ray_utils

    register = getattr(ray_utils, "set_sigterm_handler", None)
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        if register is not None:
            ray_utils.set_sigterm_handler = register
        signal.signal(signal.SIGTERM, previous)


def attach(ray_config: RayConfig, resources: ResourcesConfig, workers: int | None) -> RayConnection:
    """`connect` without the signal bookkeeping."""
    import ray

    address = ray_config.address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and address != "local":
        address = check_address(address)
    runtime_env = check_runtime_env(ray_config.runtime_env)
    if ray.is_initialized():
        if runtime_env:
            log.warning("ray.runtime_env is ignored: this process is already a Ray driver, with its own environment")
        return RayConnection(address="existing", embedded=False, owned=False)
    if address is None or address == "local":
        return start_embedded(ray_config, resources, workers)
    return connect_existing(address, runtime_env)


def check_address(address: str) -> str:
    """The address, stripped, if it has one of the forms Ray accepts; a `UserError` otherwise."""
    address = address.strip()
    if not ADDRESS_FORMS.fullmatch(address) or (address != "auto" and int(address.rpartition(":")[2]) > 65535):
        raise UserError(f"expected 'auto', 'ray://host:port' or 'host:port', got {address!r}", key=ADDRESS_KEY)
    return address


def connect_existing(address: str, runtime_env: dict[str, Any] | None = None) -> RayConnection:
    """`ray.init(address=...)` on an existing cluster, its workers in `runtime_env` (None: as they were started);
    any failure to reach it is one line naming the address."""
    import ray

    if address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            reason += " (a cluster with token authentication needs RAY_AUTH_MODE=token and its token here)"
        raise UserError(f"cannot connect to the Ray cluster at {address!r}: {reason}", key=ADDRESS_KEY) from None
    log.info("connected to the Ray cluster at %s: %s", address, describe(ray.cluster_resources()))
    return RayConnection(address=address, embedded=False, owned=True)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds on a host or port that does not answer, where `ray.init` would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at {address!r}: {reason}", key=ADDRESS_KEY) from None


def embedded_cpus(resources: ResourcesConfig, workers: int | None) -> int | None:
    """CPUs to declare: enough for `workers` candidates at once, or None to let Ray count the machine's cores.

    Declaring `workers * cpus_per_trial` CPUs (not `workers`) is what makes `--workers N` mean N candidates in
    parallel whatever `resources.cpus_per_trial` says.
    """
    if workers is None:
        return None
    return max(1, math.ceil(workers * resources.cpus_per_trial))


def start_embedded(ray_config: RayConfig, resources: ResourcesConfig, workers: int | None) -> RayConnection:
    """Start a Ray private to this process, and refuse at once a request it could never schedule."""
    import ray

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        log.warning("RAY_AUTH_MODE=disabled: the embedded Ray runs without token authentication")
    auth_logger = logging.getLogger(AUTH_SETUP_LOGGER)
    previous_level = auth_logger.level
    auth_logger.setLevel(logging.ERROR)  # Ray's "token auth is on, set disabled to opt out" notice
    try:
        with own_process_group():
            context = init_local(
                num_cpus=embedded_cpus(resources, workers),
                include_dashboard=ray_config.dashboard,
                dashboard_host="127.0.0.1",
                logging_level=logging.WARNING,
                runtime_env=check_runtime_env(ray_config.runtime_env),
            )
    finally:
        auth_logger.setLevel(previous_level)
    url = f"http://{context.dashboard_url}" if ray_config.dashboard and context.dashboard_url else None
    connection = RayConnection(address="local", embedded=True, owned=True, dashboard_url=url)
    try:
        check_feasible(resources, ray.cluster_resources())
    except UserError:
        connection.close()
        raise
    where = f", dashboard {url}" if url else ""
    log.info("embedded Ray started: %s, token auth %s%s", describe(ray.cluster_resources()), auth_mode(), where)
    return connection


def init_local(**options: Any) -> Any:
    """`ray.init(address="local", **options)`, started again when Ray's wait for its raylet ran out.

    Ray gives a new node's raylet a fixed 30 s to register with the GCS (`ray/_private/node.py`; no setting
    changes it) and raises "The current node timed out during startup" otherwise. On an idle 2-core machine it
    takes 2 to 4 s; on a loaded login node or CI runner it has taken longer than 30. Such a start is cleaned up
    (the processes it left are killed) and tried again, `START_ATTEMPTS` times in all, then reported as one
    line; any other failure is Ray's own and raised as it is.
    """
    import ray

    for attempt in range(1, START_ATTEMPTS + 1):
        before = child_processes()
        try:
            return ray.init(address="local", **options)
        except Exception as exc:
            if STARTUP_TIMED_OUT not in str(exc):
                raise
            kill_new(before)
            if attempt == START_ATTEMPTS:
                raise UserError(
                    f"the embedded Ray did not start: its raylet did not register within Ray's 30 s, "
                    f"{START_ATTEMPTS} times (is the machine overloaded?); `--workers 0` evaluates in-process"
                ) from None
            log.warning("the embedded Ray timed out starting (attempt %d of %d): starting it again", attempt,
                        START_ATTEMPTS)  # fmt: skip
    raise AssertionError("unreachable")


def child_processes() -> set[int]:
    """The pids of this process's descendants (empty where Ray's bundled psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return set()
    return {p.pid for p in psutil.Process().children(recursive=True)}


def kill_new(before: set[int]) -> None:
    """Kill the descendants that are not in `before`: the GCS, raylet and agents of a start that failed, which
    Ray otherwise leaves running until this process exits."""
    try:
        import psutil
    except ImportError:
        return
    doomed = []
    for pid in child_processes() - before:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            process.kill()
            doomed.append(process)
    psutil.wait_procs(doomed, timeout=10)


@contextlib.contextmanager
def own_process_group() -> Iterator[None]:
    """Start the embedded Ray's processes (GCS, raylet, and the workers the raylet forks) in a process group of
    their own, as Ray itself does on Windows.

    Otherwise they share the command's group, and a SIGTERM sent to that group (`kill -TERM -PGID`, a job
    scheduler, a container stop) killed the GCS under the driver, which then hung for a minute in Ray's
    reconnect loop and exited 1. Out of the group, only the driver gets the signal; it stops at its next safe
    point and shuts its Ray down itself, and if the driver dies Ray's fate sharing (the kernel's parent-death
    signal) still ends them. Where the kernel offers no fate sharing they stay in the group, which is then what
    cleans them up.
    """
    import ray._private.services as services
    import ray._private.utils as ray_utils

    original = services.ConsolePopen
    if sys.platform == "win32" or not ray_utils.detect_fate_sharing_support():
        yield
        return

    class GroupedPopen(services.ConsolePopen):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("process_group", 0)
            super().__init__(*args, **kwargs)

    # The type checker reads `ConsolePopen` as a class, whose name cannot be rebound; to Ray it is the module
    # attribute its launcher reads when it starts a process, and replacing that attribute is the point here.
    launcher: Any = services
    launcher.ConsolePopen = GroupedPopen
    try:
        yield
    finally:
        launcher.ConsolePopen = original


def check_feasible(resources: ResourcesConfig, available: dict[str, float]) -> None:
    """A trial asking more than this machine has would wait forever: say so instead."""
    gpus, cpus = available.get("GPU", 0.0), available.get("CPU", 0.0)
    if resources.gpus_per_trial > gpus:
        raise UserError(
            f"asks {resources.gpus_per_trial:g} GPU per trial but the local Ray has {gpus:g}; "
            "set it to 0 or give --ray-address of a GPU cluster",
            key="resources.gpus_per_trial",
        )
    if resources.cpus_per_trial > cpus:
        raise UserError(
            f"asks {resources.cpus_per_trial:g} CPUs per trial but the local Ray has {cpus:g}",
            key="resources.cpus_per_trial",
        )


def auth_mode() -> str:
    """Whether Ray's token authentication is on in this process ("on" or "off")."""
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    return "on" if is_token_auth_enabled() else "off"


def describe(resources: dict[str, float]) -> str:
    return f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
