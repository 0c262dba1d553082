"""`nas train ARCH --config CONFIG [--epochs N] [--full] [--save DIR] [--seed N] [--json]`: train one network.

The fitness evaluation, run by hand, or the retraining of an exported architecture: the config's dataset and
`fitness` settings, the architecture file's network (and its learning rate, when the file has one, in place of
`fitness.lr`), initialised and trained from the config's seed (`--seed` overrides it).

- Default: train on the training split minus the validation carve; report `val_accuracy` and, when the dataset
  has a test split, `test_accuracy`.
- `--full`: train on the whole training split (no validation carve) and report `test_accuracy`.
- `--json`: exactly one JSON object on stdout: the trainer's report (`val_accuracy`, `test_accuracy`,
  `train_loss`, `epochs`, `seconds`, `images_per_second`, `peak_memory_mb`) plus `params` and `flops`.
- `--save DIR`: `weights.pt` (the plain state_dict of the network, by `torch.save`; load it with
  `torch.load(..., weights_only=True)` into `build_model(arch)`, which takes normalised input),
  `model.pt2` (a `torch.export` program of the trained network in eval mode, on the CPU, taking images in the
  user's units and normalising them inside: `nas.model.program`, `nas.model.preprocess`), `preprocess.json`
  (what the model expects: class names, channel order, input size, mean and std of the training split, ..., and
  `weights`: how it was trained, `retrained` with `--full`), `metrics.json` (the report, the seed and the
  inputs) and `architecture.yaml`; with `--onnx` also `model.onnx`. `nas predict DIR IMAGES...` runs it.
  The folder is published whole when every file is written (`nas.stagedir`); one that holds anything else is
  refused before training starts.
- `--cv PROTOCOL`: the dataset's cross-validation protocol (`nas.evaluate.crossval`).

The architecture's `in_channels`, `num_classes` and `input_size` must match the data; a mismatch is a one-line
error naming the architecture file (resize the data with `dataset.resize`, or fix the file).

`train_command` takes the flags as typed parameters (`nas.cli` passes the parsed ones; a flag not given is the
parameter's default), so Python code calls it directly, without the command line's parser.
"""

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.atomicfile import atomic_write_text
from nas.config import Config, load_config
from nas.data.dataset import ImageData
from nas.errors import UserError
from nas.evaluate.fit_check import check_fits
from nas.evaluate.threads import use_given_cores
from nas.genome.architecture import Architecture, load_architecture, save_architecture
from nas.model.analytic_cost import analytic_cost, check_cost

if TYPE_CHECKING:  # torch is imported when training starts, so that bad input fails fast
    from torch import nn

    from nas.evaluate.trainer import TrainReport
    from nas.model.preprocess import Preprocess

log = logging.getLogger(__name__)

# model.ts is what earlier versions wrote: owned, so that saving again into such a folder replaces it
SAVED_FILES = ("weights.pt", "model.pt2", "model.ts", "model.onnx", "preprocess.json", "metrics.json",
               "architecture.yaml")  # fmt: skip


def save_weights(model: "nn.Module", path: Path) -> None:
    """The state_dict, on the CPU, written by temp file and rename (tensors only: loads with weights_only)."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_outputs(
    folder: Path, model: "nn.Module", arch: Architecture, metrics: dict[str, Any], pre: "Preprocess", onnx: bool
) -> None:
    """weights.pt, model.pt2 (and model.onnx), preprocess.json, metrics.json and architecture.yaml."""
    from nas.model.preprocess import save_preprocess
    from nas.model.program import save_program

    save_weights(model, folder / "weights.pt")
    save_program(model, pre, folder / "model.pt2")
    if onnx:
        from nas.model.onnx_export import save_onnx

        save_onnx(model, pre, folder / "model.onnx")
    pre.weights = {"source": "retrained" if metrics["full"] else "trained", "epochs": metrics["epochs"]}
    pre.weights.update({k: metrics[k] for k in ("val_accuracy", "test_accuracy") if metrics.get(k) is not None})
    save_preprocess(pre, folder / "preprocess.json")
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    save_architecture(arch, folder / "architecture.yaml")


def save_folder(save: str | Path | None) -> contextlib.AbstractContextManager[Path | None]:
    """A staging folder published as `save` on success (checked before any work), or nothing."""
    if not save:
        return contextlib.nullcontext(None)
    from nas.stagedir import staged_directory

    return staged_directory(save, refreshable=True, owned=SAVED_FILES, flag="--save")


def run_training(
    arch: Architecture, config: Config, seed: int, *, source: str, full: bool, epochs: int | None
) -> tuple["nn.Module", "TrainReport", ImageData]:
    """Load the data, check that the network fits it (a misfit names `source`, the architecture file), train
    (`epochs` overrides `fitness.epochs`); returns the trained model, the report, the data."""
    from nas.data.loading import load_dataset
    from nas.evaluate.recipe import recipe
    from nas.evaluate.trainer import seeded_model, train_model

    data = load_dataset(config.dataset, seed, full=full)
    check_fits(arch, data, source)
    model = seeded_model(arch, seed)
    evaluate = ("test",) if full else ("val", "test")
    report = train_model(
        model,
        data,
        config.fitness,
        seed=seed,
        epochs=epochs,
        lr=arch.genome.learning_rate,
        full=full,
        evaluate=evaluate,
        progress=True,
        **recipe(config.fitness, config.dataset.name, data, full=full),
    )
    return model, report, data


def format_text(out: dict[str, Any], arch_path: str) -> str:
    lines = [f"trained {arch_path} for {out['epochs']} epochs in {out['seconds']:.1f} s "
             f"({out['images_per_second']:.0f} images/s, peak memory {out['peak_memory_mb']:.0f} MB)"]  # fmt: skip
    for key in ("val_accuracy", "test_accuracy"):
        if out[key] is not None:
            lines.append(f"  {key.replace('_', ' '):<14} {out[key]:.4f}")
    loss = "n/a" if out["train_loss"] is None else f"{out['train_loss']:.4f}"
    lines.append(f"  {'train loss':<14} {loss}")
    lines.append(f"  params {out['params']:,}  flops {out['flops']:,}")
    return "\n".join(lines)


def check_train_cost(arch: Architecture, config: Config, source: str) -> None:
    """Refuse, before the data loads or anything is built, an architecture over the config's `limits`."""
    try:
        check_cost(arch, config.limits, config.fitness.batch_size, "this architecture")
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None


def train_command(
    architecture: str | Path,
    config_path: str | Path,
    *,
    overrides: Sequence[str] | None = None,
    epochs: int | None = None,
    full: bool = False,
    save: str | Path | None = None,
    onnx: bool = False,
    cv: str | None = None,
    seed: int | None = None,
    as_json: bool = False,
) -> int:
    """`nas train ARCH --config CONFIG ...`: train the architecture file's network (or run the `cv` protocol)
    and print the report; returns 0. `overrides` are `--set KEY.PATH=VALUE` applied to the config (see
    `nas.config.apply_overrides`)."""
    source = str(architecture)
    config = load_config(config_path, overrides)
    arch = load_architecture(source)
    check_train_cost(arch, config, source)
    threads = use_given_cores(config.resources.cpus_per_trial)
    if cv:
        from nas.evaluate.crossval import crossval_command

        return crossval_command(
            arch,
            config,
            architecture=source,
            config_path=config_path,
            cv=cv,
            seed=seed,
            epochs=epochs,
            save=save,
            as_json=as_json,
        )
    seed = config.seed if seed is None else seed
    if onnx:
        from nas.model.onnx_export import require_onnx

        require_onnx()
        if not save:
            raise UserError("--onnx writes model.onnx into the --save folder; give --save DIR")
    with save_folder(save) as stage:
        model, report, data = run_training(arch, config, seed, source=source, full=full, epochs=epochs)
        params, flops = analytic_cost(arch)
        out = {**report.to_dict(), "params": params, "flops": flops, "threads": threads}
        if stage is not None:
            inputs = {
                "architecture": str(Path(architecture).resolve()),
                "config": str(Path(config_path).resolve()),
            }
            metrics = {**out, "seed": seed, "full": full, "dataset": config.dataset.name, **inputs}
            from nas.model.preprocess import preprocess_of

            pre = preprocess_of(config.dataset, data)
            save_outputs(stage, model, arch, metrics, pre, onnx)
    if save:
        log.info("saved the trained network to %s (run it with: nas predict %s IMAGES...)", save, save)
    print(json.dumps(out, allow_nan=False) if as_json else format_text(out, source))
    sys.stdout.flush()
    return 0
