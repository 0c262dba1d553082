"""A training's whole state between two rungs of `search.fidelity`, as bytes in the safetensors format.

A candidate that stops after epoch E of its `fitness.epochs` budget and is later promoted continues exactly
where it stopped, so what is saved is everything the next epoch reads: the weights and BatchNorm buffers, the
optimizer's state (momentum buffers, AdamW moments and steps, the param groups), the epochs done (the learning
rate is a pure function of that and of the full budget, `nas.evaluate.schedules`), the batch-order generator
(it draws every permutation, crop and flip) and, for completeness, the global RNGs of torch (and CUDA), numpy
and Python. On the CPU a training stopped and continued this way ends bit for bit where an uninterrupted one
does (tests/test_trainstate.py).

Format, and why not `torch.save`: DESIGN.md says nothing in a run directory is a pickle, and `torch.save` is a
pickle even when it is loaded with `weights_only=True` (that loader is a restricted unpickler, safe by
allow-list). safetensors holds tensors only and has no code path that can run anything on load; everything
else (numbers, param groups, the Python and numpy RNG states) is JSON in the file's `__metadata__` under the
key `nas`, so the file is one object, written in one atomic replace. Files start with the 8-byte length of a
JSON header, so `nas.evaluate.rungfile.read_header` checks a file without torch (the driver never imports it).
The driver seals each state it writes under `RUN_DIR/rungs/` with the candidate's key and a sha256 of the whole
file, and checks both, and the epochs, before it ships a state back here (`nas.evaluate.rungfile.check`): a
flipped byte, a NaN written over the weights or a header edited by hand never reaches `restore`; the candidate
trains from epoch 0 instead.
"""

import json
import random
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from nas.evaluate.rungfile import FORMAT, META_KEY, read_header


def capture(
    model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator, epochs_done: int, **extra: Any
) -> bytes:
    """The state after `epochs_done` epochs, as safetensors bytes; `extra` (JSON-safe) goes into the header."""
    tensors = {f"model.{k}": plain(v) for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, stats in optim["state"].items():
        for name, value in stats.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = plain(value)
            else:
                scalars.setdefault(str(index), {})[name] = value
    tensors["rng.batch"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(np_keys, dtype=np.uint32).astype(np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "format": FORMAT,
        "epochs_done": epochs_done,
        "batch_device": generator.device.type,
        "param_groups": optim["param_groups"],
        "optim_scalars": scalars,
        "numpy": [np_kind, int(np_pos), int(np_has_gauss), float(np_gauss)],
        "python": [py_version, list(py_state), py_gauss],
        **extra,
    }
    return save_tensors(tensors, metadata={META_KEY: json.dumps(meta)})


def plain(tensor: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous CPU copy (safetensors stores dense row-major data; channels_last is a layout)."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def restore(blob: bytes, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> int:
    """Load a `capture` into a freshly built model, optimizer and generator; returns the epochs done.

    A blob that is not a rung state of this network (other tensors, other shapes, a header field missing or of
    the wrong type, an RNG state torch refuses) raises `ValueError`, never a `KeyError` or torch's own error: a
    candidate whose state does not fit is a failed result, never a silently different training. The whole
    header is read before anything is loaded, so a missing field is refused before any state changes. The
    driver checks a state file's checksum, key and epochs before it ships the bytes here
    (`nas.evaluate.rungfile.check`; a file that fails is retrained from epoch 0 instead), so on a run's own
    files this refuses only a state that cannot be continued here (one saved on another kind of device)."""
    meta = read_meta(blob)
    try:
        tensors = load_tensors(blob)
    except Exception as exc:  # safetensors' own error type: a header or data it cannot read
        raise ValueError(f"the rung state's tensors do not load: {first_line(exc)}") from None
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    state: dict[int, dict[str, Any]] = {}
    try:
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, index, stat = name.split(".", 2)
                state.setdefault(int(index), {})[stat] = value
        for index, stats in dict(meta["optim_scalars"]).items():
            state.setdefault(int(index), {}).update(dict(stats))
        param_groups = list(meta["param_groups"])
        device = str(meta["batch_device"])
        kind, pos, has_gauss, gauss = meta["numpy"]
        numpy_state = (kind, tensors["rng.numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss))
        version, py_state, py_gauss = meta["python"]
        python_state = (version, tuple(py_state), py_gauss)
        batch, global_rng = tensors["rng.batch"], tensors["rng.torch"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the rung state's header is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    if device != generator.device.type:
        raise ValueError(f"the rung state was saved on {device}, not {generator.device.type}")
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    try:
        model.load_state_dict(weights, strict=True)
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
        generator.set_state(batch)
        torch.set_rng_state(global_rng)
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"the rung state does not fit this network: {first_line(exc)}") from None
    return int(meta["epochs_done"])


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch's load errors list every mismatched key)."""
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def read_meta(blob: bytes) -> dict[str, Any]:
    """The JSON header a `capture` wrote; `ValueError` when `blob` is not a rung state."""
    meta = read_header(blob)
    if meta is None:
        raise ValueError(f"not a rung state (no {FORMAT} header)")
    return meta
