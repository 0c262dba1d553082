"""Transfer arm: seconds per training step of each backbone at its paper input size, through the real trainer.

For ResNet50 (224 px), InceptionV3 and InceptionResNetV2 (299 px): the fine-tuning network of `nas baseline`
(input adaptation, backbone, new 12-class head, as for BBBC021) trained by `nas.evaluate.trainer.train_model`
with the arm's recipe (SGD momentum, dihedral augmentation, balanced class weights) on synthetic 3-channel
images stored at the input size, batch 8 by default. One untimed warm-up step first (allocator, oneDNN/cuDNN
kernel choice), then `--steps` timed steps; the trainer's own images/s (training only, no evaluation) gives the
seconds per step. Prints a table and one JSON line with the machine, the date and the load average (the CPU
figures are only as good as the machine was idle).

    .venv/bin/python benchmarks/transfer_step.py --steps 3 --device cpu
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from nas.config import parse_config  # noqa: E402
from nas.data.dataset import ImageData  # noqa: E402
from nas.evaluate.trainer import train_model  # noqa: E402
from nas.transfer.backbones import BACKBONES  # noqa: E402
from nas.transfer.classifier import build_classifier  # noqa: E402
from nas.transfer.recipe import augmentation, balanced_class_weights, fitness_settings  # noqa: E402

CLASSES = 12


def synthetic(n: int, size: int, seed: int = 0) -> ImageData:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)
    y = np.arange(n) % CLASSES
    names = [f"c{i}" for i in range(CLASSES)]
    return ImageData(x, y, None, None, None, None, CLASSES, names, (127.5,) * 3, (73.9,) * 3)


def measure(name: str, batch: int, steps: int, device: str) -> dict:
    """Seconds per step and images/s of `steps` timed training steps after one warm-up step."""
    backbone = BACKBONES.get(name)
    size = backbone.input_size
    section = parse_config({"baseline": {"model": name, "pretrained": False, "batch_size": batch}}).baseline
    model = build_classifier(name, CLASSES, 3, state=None, input_size=size)

    def train(n: int):
        data = synthetic(n, size)
        return train_model(model, data, fitness_settings(section, epochs=1), seed=0, full=True, evaluate=(),
                           augmentation=augmentation(section), device=device,
                           class_weights=balanced_class_weights(data.y_train, CLASSES))  # fmt: skip

    train(batch)
    report = train(batch * steps)
    ips = report.images_per_second
    return {
        "model": name,
        "input_size": size,
        "batch": batch,
        "steps": steps,
        "seconds_per_step": round(batch / ips, 3),
        "images_per_second": round(ips, 2),
        "params": sum(p.numel() for p in model.parameters()),
        "peak_memory_mb": round(report.peak_memory_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per backbone")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--models", nargs="*", default=["resnet50", "inception_v3", "inception_resnet_v2"])
    args = parser.parse_args()
    rows = [measure(name, args.batch, args.steps, args.device) for name in args.models]
    print(f"{'model':<22} {'input':>5} {'batch':>5} {'s/step':>8} {'images/s':>9} {'params':>12} {'peak MB':>9}")
    for r in rows:
        print(f"{r['model']:<22} {r['input_size']:>5} {r['batch']:>5} {r['seconds_per_step']:>8.3f} "
              f"{r['images_per_second']:>9.2f} {r['params']:>12,} {r['peak_memory_mb']:>9.0f}")  # fmt: skip
    info = {**machine(), "load_average": [round(v, 2) for v in os.getloadavg()], "device": args.device}
    print(json.dumps({"benchmark": "transfer_step", **info, "rows": rows}))


if __name__ == "__main__":
    main()
