"""Reading an ImageNet weights file safely and checking it against a backbone before any training starts.

A weights file is what torchvision or timm users already have: a bare `state_dict` (`torch.save(model.
state_dict(), path)`), or a training checkpoint holding one under `"state_dict"` or `"model"` (timm's
`train.py` writes the former); a `module.` prefix left by `DataParallel` is stripped. It is read only with
`torch.load(..., weights_only=True)`, so a file holding code or whole pickled modules is refused, never run; a
`.safetensors` file (the Hugging Face hub's format) is refused with the one-line conversion to a `.pth`, so that
there is one loader to trust.

The error for an absent file prints the command that writes it there (`nas.transfer.weights_recipe`) and says that
`pretrained: false` runs without one.
Every way a file can be wrong (absent, truncated, not a state_dict, another architecture: missing or unexpected
keys, a shape mismatch) is a `UserError` of one line naming the file, raised by `check_weights` against a
network built on the `meta` device (no memory, no time), so that a wrong file for the third backbone is found
before the first one trains for hours. Classifier tensors (and InceptionV3's auxiliary head) may be present
with any shape or absent: they are replaced anyway (the same rule as timm's `load_pretrained` with another
`num_classes`).
"""

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from nas.errors import UserError
from nas.transfer.backbones import Backbone
from nas.transfer.weights_recipe import save_command

KEY = "baseline.weights"
SHOWN_KEYS = 3


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, loaded with `weights_only=True`; any unreadable file is a `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"weights file not found: {p}" if not p.exists() else f"weights path is not a file: {p}", KEY)
    if p.suffix == ".safetensors":
        raise UserError(f"{p}: safetensors files are not read; convert it once with torch.save("
                        "safetensors.torch.load_file(path), 'name.pth')", KEY)  # fmt: skip
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise UserError(f"{p}: holds objects other than tensors; save model.state_dict() instead", KEY) from None
        raise UserError(f"{p}: not a readable weights file (truncated or corrupt)", KEY) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: not a readable weights file (truncated or corrupt: {type(exc).__name__})", KEY) from None
    return unwrap(data, p)


def unwrap(data: object, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a checkpoint: the mapping itself, or its `state_dict` / `model` entry."""
    if isinstance(data, Mapping):
        for inner in ("state_dict", "model"):
            if isinstance(data.get(inner), Mapping):
                data = data[inner]
                break
    if not isinstance(data, Mapping) or not data:
        raise UserError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)", KEY)
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{path}: not a state_dict (entry {bad[0]!r} is not a named tensor)", KEY)
    if all(k.startswith("module.") for k in data):
        return {k.removeprefix("module."): v for k, v in data.items()}
    return dict(data)


def body(keys: Mapping[str, object] | set[str], backbone: Backbone) -> set[str]:
    """The keys that must match exactly: everything but the replaced heads and BatchNorm's batch counters
    (older torchvision files, e.g. ResNet50's IMAGENET1K_V1, predate `num_batches_tracked`)."""
    return {k for k in keys if not k.startswith(backbone.ignored_prefixes) and not k.endswith(".num_batches_tracked")}


def expected_shapes(backbone: Backbone) -> dict[str, torch.Size]:
    """Every state_dict shape of the ImageNet-shaped backbone, built on the meta device (instant, no memory)."""
    with torch.device("meta"):
        model = backbone.build(True)
    return {k: v.shape for k, v in model.state_dict().items()}


def check_weights(state: Mapping[str, torch.Tensor], backbone: Backbone, path: str | Path) -> None:
    """Refuse a state_dict that is not this backbone's, with one line naming the file and the first culprits."""
    expected = expected_shapes(backbone)
    missing = sorted(body(expected, backbone) - set(state))
    unexpected = sorted(body(state, backbone) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({', '.join(missing[:SHOWN_KEYS])}, ...)")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:SHOWN_KEYS])}, ...)")
        raise UserError(f"{path}: not {backbone.title} weights: {'; '.join(parts)}", KEY)
    for k in sorted(body(state, backbone)):
        if state[k].shape != expected[k]:
            got, want = tuple(state[k].shape), tuple(expected[k])
            raise UserError(f"{path}: not {backbone.title} weights: {k} has shape {got}, expected {want}", KEY)


def missing_file(backbone: Backbone, path: str | Path) -> str:
    """The error for an absent file: the command that writes it there, and the way to run without one."""
    return (f"weights file not found: {path}; write it once (needs internet) with: "
            f"{save_command(backbone.name, path)}; or train from scratch with baseline.pretrained: false and no "
            "baseline.weights (--set baseline.pretrained=false --set baseline.weights=null)")  # fmt: skip


def load_checked(backbone: Backbone, path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file and check it against `backbone`: the state to build every fold's network from."""
    if not Path(path).exists():
        raise UserError(missing_file(backbone, path), KEY)
    state = read_state_dict(path)
    check_weights(state, backbone, path)
    return state


def apply_weights(model: nn.Module, backbone: Backbone, state: Mapping[str, torch.Tensor]) -> None:
    """Copy a checked state into `model` (the ImageNet-shaped backbone, before `replace_head`); the ignored
    heads are left at their fresh initialisation, since they are replaced or dropped next."""
    own = model.state_dict()
    kept = {k: v for k, v in state.items() if k in own and not k.startswith(backbone.ignored_prefixes)}
    model.load_state_dict(kept, strict=False)
