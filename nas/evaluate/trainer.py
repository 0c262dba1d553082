"""The trainer: one network, one dataset, a fixed epoch budget. The only training loop in evonas.

Fitness evaluation (DESIGN.md section 4), `nas train`, and the transfer arm all train through `train_model`, so
a number from any of them means the same thing. Choices made for speed, because a search trains thousands of
candidates:

- The data is moved to the training device once, as stored (uint8 images stay uint8, 4x smaller than float), and
  each batch is sliced from a seeded permutation, augmented as a whole (`nas.evaluate.augment`), then normalised
  with the training split's mean and std on the device. No DataLoader, no per-sample Python.
- channels_last memory format, bf16 autocast on CUDA (`fitness.precision: auto`; `bf16` forces it on the CPU
  too, `fp32` turns it off); no torch.compile, since every candidate is a new graph and compiling costs more
  than it saves.
- The loss is summed on the device and read once an epoch, so the loop never waits on the GPU mid-epoch.

Determinism: one `torch.Generator` seeded with `seed` draws every permutation, crop and flip; on the CPU the
same seed and the same initial weights give the same numbers; on a GPU only with `fitness.deterministic`
(`nas.evaluate.determinism`). The weights are the caller's (see
`seeded_model`). An epoch is ceil(N / batch_size) steps; a last batch of a single image (with a batch size above
1) is dropped, since BatchNorm cannot normalise one value per channel in networks that pool down to 1x1.

Peak memory: on CUDA the peak allocated by this training (`torch.cuda.max_memory_allocated`, reset first); on
the CPU the process's peak resident set size (`ru_maxrss`), a high-water mark that includes the data.
"""

import math
import resource
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.config import FitnessConfig
from nas.data.aggregate import grouped_accuracy
from nas.data.dataset import ImageData
from nas.evaluate import trainstate
from nas.evaluate.augment import Augmentation, augment_batch
from nas.evaluate.determinism import set_deterministic
from nas.evaluate.schedules import learning_rate
from nas.genome.architecture import Architecture
from nas.model.network import build_model

SPLITS = ("val", "test")


@dataclass
class TrainReport:
    """What one training returns. Accuracies are None for splits not evaluated (or absent)."""

    val_accuracy: float | None
    test_accuracy: float | None
    train_loss: float
    epochs: int
    seconds: float
    images_per_second: float
    peak_memory_mb: float
    final_lr: float = math.nan  # the learning rate of the last step trained: where the schedule ended
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    state: bytes | None = field(default=None, repr=False)  # the rung state when stopped early (`stop_after`)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe metrics of `nas train --json` (no probabilities, no state, and not `final_lr`, which
        rung results record themselves; NaN and infinities become None)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("probs", "state", "final_lr")}
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}


def shared_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor over `array`'s memory, without a copy, even when the array is read-only.

    Under Ray the dataset arrives from the object store as read-only arrays (zero-copy); torch warns that such
    a tensor must not be written to. The trainer never writes to it (batches are gathered into new tensors),
    and a copy would double the dataset's memory on the CPU for every candidate, so the warning is silenced here
    and only here."""
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


@dataclass
class DeviceData:
    """A split's images and labels on the training device, with the normalisation of the training split."""

    x: torch.Tensor
    y: torch.Tensor
    mean: torch.Tensor
    inv_std: torch.Tensor

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, data: ImageData, device: torch.device) -> "DeviceData":
        shape = (1, len(data.mean), 1, 1)
        return cls(
            x=shared_tensor(np.ascontiguousarray(x)).to(device),
            y=torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device),
            mean=torch.tensor(data.mean, dtype=torch.float32, device=device).view(shape),
            inv_std=1.0 / torch.tensor(data.std, dtype=torch.float32, device=device).view(shape),
        )

    def __len__(self) -> int:
        return len(self.y)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Stored units -> zero mean, unit variance, float32, channels_last."""
        out = (x.float() - self.mean) * self.inv_std
        return out.contiguous(memory_format=torch.channels_last)


def resolve_device(requested: str | None) -> torch.device:
    """`auto` (or None) is CUDA when there is a GPU, else the CPU; anything else is taken as given."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: `auto` on CUDA GPUs that support it, `bf16` always, `fp32` never."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def make_optimizer(model: nn.Module, fitness: FitnessConfig, lr: float) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum and weight decay, or AdamW; the schedule sets the lr every step."""
    if fitness.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=fitness.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=fitness.momentum,
        nesterov=fitness.nesterov and fitness.momentum > 0,
        weight_decay=fitness.weight_decay,
    )


def schedule_values(fitness: FitnessConfig, lr: float | None) -> list[float] | None:
    """`fitness.lr_values`, rescaled so that it starts at `lr` when a learning rate is given (a genome's)."""
    if not fitness.lr_values or lr is None:
        return fitness.lr_values
    scale = lr / fitness.lr_values[0]
    return [v * scale for v in fitness.lr_values]


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each batch of an epoch; a last batch of one image is dropped (see module docstring)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and batch_size > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model's output: a tensor, or the main output of torchvision's Inception tuples."""
    if isinstance(output, torch.Tensor):
        return output
    return output.logits if hasattr(output, "logits") else output[0]


@dataclass
class EpochRunner:
    """Everything one epoch needs, so that `train_model` reads as the loop DESIGN.md describes."""

    model: nn.Module
    train: DeviceData
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    fitness: FitnessConfig
    augmentation: Augmentation
    generator: torch.Generator
    bf16: bool
    epochs: int
    lr: float
    values: list[float] | None

    def run(self, epoch: int) -> float:
        """Train one epoch; returns the mean training loss over its images."""
        self.model.train()
        n = len(self.train)
        order = torch.randperm(n, generator=self.generator, device=self.train.x.device)
        bounds = batch_bounds(n, self.fitness.batch_size)
        total = torch.zeros((), device=self.train.x.device)
        seen = 0
        for step, (start, end) in enumerate(bounds):
            self.set_lr(epoch + step / len(bounds))
            idx = order[start:end]
            x = self.train.normalise(augment_batch(self.train.x[idx], self.augmentation, self.generator))
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = logits_of(self.model(x))
            loss = self.loss_fn(logits.float(), self.train.y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * (end - start)
            seen += end - start
        return float(total.item()) / max(seen, 1)

    def set_lr(self, t: float) -> None:
        lr = learning_rate(
            self.fitness.schedule,
            self.lr,
            t,
            self.epochs,
            values=self.values,
            warmup_fraction=self.fitness.warmup_fraction,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr


@torch.no_grad()
def predict(model: nn.Module, split: DeviceData, batch_size: int, bf16: bool) -> np.ndarray:
    """Softmax probabilities (float32, on the CPU) of every image of `split`, in eval mode."""
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        x = split.normalise(split.x[start : start + batch_size])
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = logits_of(model(x))
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def training_split(data: ImageData, full: bool) -> tuple[np.ndarray, np.ndarray]:
    """The images trained on: train, or with `full` train plus validation (when the data still has one)."""
    if full and data.x_val is not None and data.y_val is not None and len(data.y_val):
        return np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val])
    return data.x_train, data.y_train


def evaluated_splits(data: ImageData, evaluate: Sequence[str], full: bool) -> dict[str, tuple]:
    """{split: (x, y, groups)} to score: validation only without `full`; test whenever asked, and with `full`."""
    unknown = set(evaluate) - set(SPLITS)
    if unknown:
        raise ValueError(f"cannot evaluate split {sorted(unknown)[0]!r} (known: {', '.join(SPLITS)})")
    out = {}
    if "val" in evaluate and not full and data.x_val is not None and len(data.x_val):
        out["val"] = (data.x_val, data.y_val, data.val_groups)
    if ("test" in evaluate or full) and data.x_test is not None and len(data.x_test):
        out["test"] = (data.x_test, data.y_test, data.test_groups)
    return out


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_model(
    model: nn.Module,
    data: ImageData,
    fitness: FitnessConfig,
    *,
    seed: int,
    epochs: int | None = None,
    lr: float | None = None,
    device: str | None = None,
    full: bool = False,
    evaluate: Sequence[str] = ("val",),
    augmentation: Augmentation | None = None,
    class_weights: np.ndarray | None = None,
    keep_probs: bool = False,
    progress: bool = False,
    resume_from: bytes | None = None,
    stop_after: int | None = None,
) -> TrainReport:
    """Train `model` on `data` for `epochs` (default `fitness.epochs`) and score the splits in `evaluate`.

    `lr` overrides `fitness.lr` (a genome's learning rate); `full` trains on train plus validation and scores
    the test split. Accuracy is `grouped_accuracy` over the split's groups (plain accuracy when it has none).
    Exceptions propagate: turning them into failed results is the objective's job.

    Rungs (`search.fidelity`): `stop_after` E ends the training after epoch E of the `epochs` budget (whose
    learning-rate schedule it follows) and returns its whole state in `report.state`; `resume_from` (such a
    state) continues from there, in a model built as the first one was (`nas.evaluate.trainstate`).
    """
    start = time.perf_counter()
    set_deterministic(fitness.deterministic)
    splits = evaluated_splits(data, evaluate, full)
    dev = resolve_device(device or fitness.device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    epochs = epochs or fitness.epochs
    base_lr = fitness.lr if lr is None else lr
    model.to(dev, memory_format=torch.channels_last)
    train = DeviceData.of(*training_split(data, full), data, dev)
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32, device=dev)
    runner = EpochRunner(
        model=model,
        train=train,
        optimizer=make_optimizer(model, fitness, base_lr),
        loss_fn=nn.CrossEntropyLoss(weight=weight, label_smoothing=fitness.label_smoothing),
        fitness=fitness,
        augmentation=augmentation or ("crop-flip" if fitness.augment else "none"),
        generator=torch.Generator(device=dev).manual_seed(seed),
        bf16=use_bf16(fitness.precision, dev),
        epochs=epochs,
        lr=base_lr,
        values=schedule_values(fitness, lr),
    )
    first = trainstate.restore(resume_from, model, runner.optimizer, runner.generator) if resume_from else 0
    last = epochs if stop_after is None else min(stop_after, epochs)
    loss, images, train_seconds = float("nan"), 0, 0.0
    for epoch in epoch_range(last, progress, start=first):
        tick = time.perf_counter()
        loss = runner.run(epoch)
        train_seconds += time.perf_counter() - tick
        images += sum(end - begin for begin, end in batch_bounds(len(train), fitness.batch_size))
    probs, scores = {}, {}
    for name, (x, y, groups) in splits.items():
        p = predict(model, DeviceData.of(x, y, data, dev), fitness.eval_batch_size, runner.bf16)
        scores[name] = grouped_accuracy(p, y, groups, data.group_reduce)
        if keep_probs:
            probs[name] = p
    return TrainReport(
        val_accuracy=scores.get("val"),
        test_accuracy=scores.get("test"),
        train_loss=loss,
        epochs=last,
        seconds=time.perf_counter() - start,
        images_per_second=images / train_seconds if train_seconds > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(dev),
        final_lr=float(runner.optimizer.param_groups[0]["lr"]),
        probs=probs,
        state=None if stop_after is None else trainstate.capture(model, runner.optimizer, runner.generator, last),
    )


def epoch_range(epochs: int, progress: bool, start: int = 0):
    """range(start, epochs), with a progress bar on stderr when asked and stderr is a terminal."""
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(range(start, epochs), desc="train", unit="epoch", file=sys.stderr, leave=False)
    return range(start, epochs)


def seeded_model(arch: Architecture, seed: int) -> nn.Module:
    """The network of `arch`, initialised from `seed` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch)
