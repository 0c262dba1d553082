"""The one command that writes a backbone's ImageNet weights file where a config reads it.

The arm never downloads (DESIGN.md section 7), so a user without the file needs to be told how to make it. The
command is a `python -c` one-liner that builds the network with its official ImageNet weights (torchvision for
ResNet50 and InceptionV3, timm for InceptionResNetV2: the same constructors `nas.transfer.backbones` uses, so the
keys match) and saves its bare `state_dict`: tensors only, which `torch.load(..., weights_only=True)` reads and
`nas.transfer.weights.check_weights` accepts. It makes the file's folder first, so it works from any folder, and
names the path once, so that the error line that prints it stays short.

ResNet50 takes torchvision's `IMAGENET1K_V1`, the original training recipe, closest to the Keras weights Kensert
et al. fine-tuned; InceptionV3 has only that one; InceptionResNetV2 takes timm's `tf_in1k`, the port of the
TensorFlow weights the paper used.

The missing-file error (`nas.transfer.weights`) and the comments of `search_configs/*_transfer.yaml` print this
command, with the path relative to the config's folder in the comments (as the config's `weights:` is).
"""

import shlex
from pathlib import Path

# What builds each backbone with its ImageNet weights: (the module to import, the expression).
IMAGENET_SOURCES = {
    "resnet50": ("torchvision", "torchvision.models.resnet50(weights='IMAGENET1K_V1')"),
    "inception_v3": ("torchvision", "torchvision.models.inception_v3(weights='IMAGENET1K_V1')"),
    "inception_resnet_v2": ("timm", "timm.create_model('inception_resnet_v2.tf_in1k', pretrained=True)"),
}
# Characters a POSIX shell still interprets inside double quotes: a path holding one is quoted by `shlex` instead.
SHELL_ACTIVE = set('"$`\\!')


def save_code(model: str, path: str | Path) -> str:
    """The Python statements that write `model`'s ImageNet state_dict to `path` (its folder made first)."""
    module, expression = IMAGENET_SOURCES[model]
    return (f"import pathlib, torch, {module}; p = pathlib.Path({str(path)!r}); "
            f"p.parent.mkdir(parents=True, exist_ok=True); torch.save({expression}.state_dict(), p)")  # fmt: skip


def save_command(model: str, path: str | Path) -> str:
    """`python -c "..."` writing `model`'s weights to `path`, quoted so that a POSIX shell passes the code as is."""
    code = save_code(model, path)
    if SHELL_ACTIVE.isdisjoint(code):
        return f'python -c "{code}"'
    return f"python -c {shlex.quote(code)}"
