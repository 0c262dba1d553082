"""One optimiser step of a network on one batch of its training data, as the trainer takes it.

`nas config check` runs it on the smallest network of a search space, so that a config whose data, device or
precision cannot train fails in seconds, before a search spends hours asking for candidates that all fail. The
step is the trainer's own (its device choice, optimiser, bf16 autocast and normalisation, `nas.evaluate.trainer`),
on the first `fitness.batch_size` training images without augmentation: what is checked is that a step runs and
gives a finite loss, not what it learns.
"""

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from nas.config import FitnessConfig
from nas.data.dataset import ImageData
from nas.evaluate.trainer import DeviceData, logits_of, make_optimizer, resolve_device, use_bf16


@dataclass(frozen=True)
class StepReport:
    """What the step gave: its loss (finite, or the step is refused), the device it ran on, and the seconds of the
    step itself (forward, backward, update; the optimiser's creation and the batch's copy to the device apart)."""

    loss: float
    device: str
    seconds: float


def train_one_step(model: nn.Module, data: ImageData, fitness: FitnessConfig) -> StepReport:
    """One forward, backward and optimiser step of `model` on the first batch of `data`'s training split; a
    `RuntimeError` when the loss is not finite (a network that cannot train on this data)."""
    device = resolve_device(fitness.device)
    count = min(fitness.batch_size, len(data.y_train))
    batch = DeviceData.of(data.x_train[:count], data.y_train[:count], data, device)
    model.to(device, memory_format=torch.channels_last)
    model.train()
    optimizer = make_optimizer(model, fitness, fitness.lr)  # a process's first one imports torch._dynamo (seconds)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(fitness.precision, device)):
        logits = logits_of(model(batch.normalise(batch.x)))
    loss = nn.functional.cross_entropy(logits.float(), batch.y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    value = float(loss.item())
    if not math.isfinite(value):
        raise RuntimeError(f"the loss of one training step is {value}")
    return StepReport(loss=value, device=str(device), seconds=time.perf_counter() - start)
