"""What one `nas baseline` invocation will run: the backbones, each with its weights file or from scratch.

The config's `baseline` section names one backbone (`model`) or several in turn (`models`, the paper's arm of
three). `weights` is a local file; with several backbones it names each file through a `{model}` placeholder
(`weights/{model}-imagenet.pth`), the way a user already keeps one file per network. Running without ImageNet
weights must be asked for in so many words (`pretrained: false`): a forgotten path must never silently produce
from-scratch numbers that read like the paper's. Such runs carry the label `from-scratch` in every output.

Every weights file is checked (readable, this architecture's keys and shapes) here, before the dataset is
loaded and before the first backbone trains, so a wrong third file fails in seconds rather than after hours.
"""

from dataclasses import dataclass
from pathlib import Path

from nas.config import BaselineConfig, Config
from nas.errors import UserError
from nas.transfer.backbones import Backbone, get_backbone
from nas.transfer.weights import load_checked

PRETRAINED = "pretrained"
FROM_SCRATCH = "from-scratch"
PLACEHOLDER = "{model}"


@dataclass(frozen=True)
class ModelRun:
    """One backbone of the arm: its name, weights file (None: from scratch) and input size."""

    backbone: Backbone
    weights: str | None
    input_size: int

    @property
    def model(self) -> str:
        return self.backbone.name

    @property
    def init(self) -> str:
        """`pretrained` or `from-scratch`: the label every output carries."""
        return PRETRAINED if self.weights is not None else FROM_SCRATCH


def baseline_section(config: Config) -> BaselineConfig:
    """The `baseline` section; a config without one is refused (its defaults would need a weights file)."""
    if config.baseline is None:
        raise UserError("missing: add a baseline section with model and weights (or pretrained: false)", "baseline")
    return config.baseline


def model_names(section: BaselineConfig) -> list[str]:
    """`models` when given (duplicates refused: they would write to the same folder), else `[model]`."""
    if section.models is None:
        return [section.model]
    if not section.models:
        raise UserError("must name at least one backbone", "baseline.models")
    for name in section.models:
        if section.models.count(name) > 1:
            raise UserError(f"{name!r} is listed twice", "baseline.models")
    return list(section.models)


def weights_path(section: BaselineConfig, model: str, several: bool) -> str | None:
    """The weights file of `model`, or None for a stated `pretrained: false`."""
    if not section.pretrained:
        if section.weights is not None:
            raise UserError("is false but baseline.weights names a file; remove one of the two", "baseline.pretrained")
        return None
    if section.weights is None:
        raise UserError("a local ImageNet weights file is required (or state pretrained: false)", "baseline.weights")
    if several and PLACEHOLDER not in section.weights:
        raise UserError(f"with several models, name each file with a {PLACEHOLDER} placeholder", "baseline.weights")
    return section.weights.replace(PLACEHOLDER, model)


def input_size(section: BaselineConfig, backbone: Backbone) -> int:
    """`baseline.input_size`, or the backbone's ImageNet size; below what the network accepts is refused."""
    size = section.input_size or backbone.input_size
    if size < backbone.min_input_size:
        raise UserError(
            f"{backbone.title} needs at least {backbone.min_input_size} px, got {size}", "baseline.input_size"
        )
    return size


def plan_runs(config: Config, check_files: bool = True) -> list[ModelRun]:
    """The arm's runs, every weights file checked against its architecture (`check_files`)."""
    section = baseline_section(config)
    names = model_names(section)
    runs = []
    for name in names:
        backbone = get_backbone(name)
        weights = weights_path(section, name, len(names) > 1)
        if weights is not None and check_files:
            load_checked(backbone, Path(weights))
        runs.append(ModelRun(backbone, weights, input_size(section, backbone)))
    return runs
