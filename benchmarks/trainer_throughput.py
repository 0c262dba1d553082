"""Training throughput (images/s) of the trainer against the two loops it replaces.

Same network (a 16x16 low-fidelity candidate: stem 16, two blocks of 3 layers, growth 12), same data (5,000
CIFAR-10 JPEG images at 16x16 from ../shared/data when present, else random images of that shape), same batch
size and epochs, in one process, interleaved and repeated; the median of the repeats is reported:

- trainer: `nas.evaluate.trainer.train_model` (tensors sliced from a seeded permutation, crop and flip on the
  whole batch, normalised on the device, channels_last, the schedule set every step);
- (a) dataloader: the loop a user would write: a `DataLoader` (shuffle, `num_workers=0`, the default) over a
  `TensorDataset` whose items go through torchvision's per-sample `RandomCrop(padding)`, `RandomHorizontalFlip`
  and `Normalize`, a plain NCHW model;
- (b) minimal: the least a loop can do: pre-normalised float tensors, a permutation, slicing, channels_last, no
  augmentation, no schedule. The trainer's ratio to it is the price of everything it adds.

Only the training loop is timed (no evaluation). Prints a table, both ratios, and one JSON line with the
machine (with its load average) and the date. Usage: `python benchmarks/trainer_throughput.py [--epochs 2]
[--repeats 3] [--images 5000] [--threads N] [--device cuda]`.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import machine  # noqa: E402
from nas.config import DatasetConfig, FitnessConfig  # noqa: E402
from nas.data.dataset import ImageData  # noqa: E402
from nas.data.loading import load_dataset  # noqa: E402
from nas.evaluate.trainer import seeded_model, train_model  # noqa: E402
from nas.genome.architecture import Architecture  # noqa: E402
from nas.genome.genome import BlockGene, Genome  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
ARCH = Architecture(3, 10, 16, 16, 4, 0.5, Genome((BlockGene(3, 12, "111111"), BlockGene(3, 12, "111111"))))


def benchmark_data(images: int) -> tuple[ImageData, str]:
    """5,000 (or `images`) training images: the shared CIFAR-10 JPEG copy at 16x16, or random ones."""
    if SHARED.is_file():
        cfg = DatasetConfig(name="imagefolder", root=str(SHARED), resize=16, train_subset=images / 50_000)
        return load_dataset(cfg, seed=0, full=True), "cifar10-jpeg 16x16"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, 3, 16, 16), dtype=np.uint8)
    y = rng.integers(0, 10, images)
    names = [str(i) for i in range(10)]
    return ImageData(x, y, None, None, None, None, 10, names, (127.5,) * 3, (73.9,) * 3), "random 16x16"


def run_trainer(data: ImageData, fitness: FitnessConfig) -> float:
    report = train_model(seeded_model(ARCH, 0), data, fitness, seed=0, evaluate=(), full=True, device=fitness.device)
    return report.images_per_second


class Transformed(Dataset):
    """A TensorDataset with a per-sample transform, as torchvision tutorials write it."""

    def __init__(self, base: TensorDataset, transform: v2.Transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        return self.transform(x), y


def run_dataloader(data: ImageData, fitness: FitnessConfig) -> float:
    transform = v2.Compose([
        v2.RandomCrop(16, padding=2),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32),
        v2.Normalize(list(data.mean), list(data.std)),
    ])  # fmt: skip
    dataset = Transformed(TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)), transform)
    loader = DataLoader(
        dataset, batch_size=fitness.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    model = seeded_model(ARCH, 0).to(fitness.device)
    opt = torch.optim.SGD(model.parameters(), lr=fitness.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    start, seen = time.perf_counter(), 0
    for _ in range(fitness.epochs):
        for x, y in loader:
            x, y = x.to(fitness.device, non_blocking=True), y.to(fitness.device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
    return seen / (time.perf_counter() - start)


def run_minimal(data: ImageData, fitness: FitnessConfig) -> float:
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = ((torch.from_numpy(data.x_train).float() - mean) / std).contiguous(memory_format=torch.channels_last)
    x, y = x.to(fitness.device), torch.from_numpy(data.y_train).to(fitness.device)
    model = seeded_model(ARCH, 0).to(fitness.device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=fitness.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    start, seen = time.perf_counter(), 0
    for _ in range(fitness.epochs):
        order = torch.randperm(len(y), generator=gen).to(fitness.device)
        for s in range(0, len(y), fitness.batch_size):
            idx = order[s : s + fitness.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data, source = benchmark_data(args.images)
    fitness = FitnessConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=0.05, schedule="cosine", augment=True, device=args.device
    )
    loops = {"trainer": run_trainer, "dataloader (a)": run_dataloader, "minimal (b)": run_minimal}
    for run in loops.values():  # warm-up: oneDNN primitives, allocator
        run(data, FitnessConfig(epochs=1, batch_size=args.batch_size, augment=True, device=args.device))
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, run in loops.items():
            rates[name].append(run(data, fitness))
    median = {name: statistics.median(values) for name, values in rates.items()}
    ratio_a = median["trainer"] / median["dataloader (a)"]
    ratio_b = median["trainer"] / median["minimal (b)"]
    print(f"{len(data.y_train)} images ({source}), batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.repeats} repeats, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'loop':<16} {'images/s (median)':>18} {'min':>8} {'max':>8}")
    for name, values in rates.items():
        print(f"{name:<16} {median[name]:>18.0f} {min(values):>8.0f} {max(values):>8.0f}")
    print(f"trainer / dataloader (a): {ratio_a:.2f}x (target >= 1.3x)")
    print(f"trainer / minimal (b):    {ratio_b:.2f}x (target >= 0.95x)")
    line = {
        "benchmark": "trainer_throughput",
        "images": len(data.y_train),
        "data": source,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "images_per_second": {k: round(v, 1) for k, v in median.items()},
        "ratio_dataloader": round(ratio_a, 3),
        "ratio_minimal": round(ratio_b, 3),
        "machine": machine(),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
