"""A candidate's forward latency (`latency_ms`), when a search ranks or caps by it.

`latency_ms` is a cost that only a measurement gives: the trained network's forward pass (eval mode, no
gradients, channels_last, the training's bf16 autocast when it used one) on the device that trained it, timed
with `torch.utils.benchmark.Timer.blocked_autorange` (which synchronises CUDA and repeats the call in blocks
until `MIN_RUN_TIME` seconds have passed, so a measurement costs a fraction of a second, bounded, whatever the
network). Two numbers go into the result's metrics: `latency_ms` at batch 1 (the objective and the cap,
`nas.strategies.pareto.cost_of`) and `latency_ms_batch` at the training batch size. Each is the median time of a
call. The architecture alone decides them, so they are measured once per genome and process (`LatencyCache`):
the rungs of `search.fidelity` and a retried candidate reuse the first measurement.

The `synthetic` objective has no network to time: `analytic_latency` is its stand-in, a deterministic linear
function of the FLOPs (a fixed overhead plus a time per GFLOP), so tests and benchmarks of latency searches are
fast and exact.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nas.config import Config

if TYPE_CHECKING:
    import torch

LATENCY = "latency_ms"
LATENCY_BATCH = "latency_ms_batch"
MIN_RUN_TIME = 0.2  # seconds of timed calls per measurement (blocked_autorange's min_run_time)

# The synthetic stand-in: a call's overhead, and milliseconds per GFLOP of the forward pass.
OVERHEAD_MS = 0.05
MS_PER_GFLOP = 2.0


def wants_latency(config: Config) -> bool:
    """Whether the search ranks or caps by latency, so its candidates must be measured."""
    search = config.search
    capped = search.constraints is not None and search.constraints.latency_ms is not None
    return LATENCY in (search.objectives or ()) or capped


def analytic_latency(flops: int, batch_size: int) -> dict[str, float]:
    """The synthetic objective's `latency_ms` and `latency_ms_batch` for a network of `flops` FLOPs an image."""
    per_image = flops / 1e9 * MS_PER_GFLOP
    return {LATENCY: OVERHEAD_MS + per_image, LATENCY_BATCH: OVERHEAD_MS + per_image * batch_size}


def forward_ms(model: "torch.nn.Module", images: "torch.Tensor", bf16: bool) -> float:
    """The median milliseconds of one forward pass of `model` on `images` (blocked_autorange, `MIN_RUN_TIME`)."""
    import torch
    from torch.utils import benchmark

    def forward() -> None:
        with torch.no_grad(), torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            model(images)

    forward()  # the first call pays for kernel selection and allocation, not the network
    timer = benchmark.Timer(stmt="forward()", globals={"forward": forward})
    return timer.blocked_autorange(min_run_time=MIN_RUN_TIME).median * 1e3


def measure_latency(
    model: "torch.nn.Module", shape: Sequence[int], batch_size: int, device: "torch.device", bf16: bool
) -> dict[str, float]:
    """`latency_ms` (batch 1) and `latency_ms_batch` (`batch_size`) of `model` on `device`, inputs of `shape`
    (channels, height, width). The model is left in eval mode (its weights and statistics are untouched)."""
    import torch

    model.eval()
    model.to(device, memory_format=torch.channels_last)
    out = {}
    for name, batch in ((LATENCY, 1), (LATENCY_BATCH, batch_size)):
        images = torch.zeros((batch, *shape), device=device).contiguous(memory_format=torch.channels_last)
        out[name] = forward_ms(model, images, bf16)
    return out


class LatencyCache:
    """Measurements by genome key, for the life of the process (module docstring)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {}

    def get(self, key: str) -> dict[str, float] | None:
        return self.values.get(key)

    def put(self, key: str, values: dict[str, float]) -> None:
        self.values[key] = dict(values)


CACHE = LatencyCache()  # one per process: each Ray worker measures its own candidates once
