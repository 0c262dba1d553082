"""Trained weights of one candidate (`nas-weights/1`): what a search keeps of its best network, so that `nas export`
writes a model that predicts.

A blob is safetensors bytes: the network's `state_dict` (weights and BatchNorm buffers, dense CPU copies) and,
in the header's `__metadata__` under the key `nas`, one JSON object: `format`, the genome `key`, the `epochs`
trained, the `val_accuracy` they scored (the candidate's fitness) and a `sha256`. safetensors because nothing in
a run directory is a pickle (DESIGN.md), and because its header reads without torch: the search driver stores
these bytes (`nas.run.best_weights`) after checking them here, and never deserialises a tensor.

The `sha256` covers the tensor index (names, dtypes, shapes, offsets), the other metadata fields and every byte
of tensor data, so a flipped weight, a truncation or an edited accuracy is caught by `check`, not loaded. The
worker seals each blob as it makes it (`capture_weights`); `load_weights` checks it again before it loads.
"""

import hashlib
import json
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported only by the two functions that need it: the driver reads headers alone
    from torch import nn

FORMAT = "nas-weights/1"
META_KEY = "nas"
DIGEST = "sha256"


def split(blob: bytes) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(the safetensors header, its `nas` metadata, where the tensor data starts); `ValueError` when `blob` is
    not a weights blob (torn, foreign, garbage)."""
    if len(blob) < 8:
        raise ValueError("it is too short to be a weights file")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8:
        raise ValueError("it is truncated")
    try:
        header = json.loads(blob[8 : 8 + size])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"it has no {FORMAT} header") from None
    if not isinstance(header, dict) or not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"it has no {FORMAT} header")
    return header, meta, 8 + size


def digest_of(header: dict[str, Any], meta: dict[str, Any], data: memoryview | bytes) -> str:
    """sha256 of the tensor index, the metadata other than the digest, and the tensor data."""
    index = {name: entry for name, entry in header.items() if name != "__metadata__"}
    digest = hashlib.sha256(json.dumps(index, sort_keys=True).encode())
    digest.update(json.dumps({k: v for k, v in meta.items() if k != DIGEST}, sort_keys=True).encode())
    digest.update(data)
    return digest.hexdigest()


def seal(blob: bytes) -> bytes:
    """`blob` with the `sha256` of its content in its `nas` metadata (the header rewritten, the data as it was)."""
    header, meta, start = split(blob)
    data = memoryview(blob)[start:]
    meta[DIGEST] = digest_of(header, meta, data)
    header["__metadata__"] = {**header["__metadata__"], META_KEY: json.dumps(meta)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header so that the tensors start 8-aligned
    return struct.pack("<Q", len(text)) + text + data


def check(blob: bytes) -> dict[str, Any]:
    """The `nas` metadata of a sealed, intact blob; `ValueError` (a few words saying what is wrong) otherwise."""
    header, meta, start = split(blob)
    if meta.get(DIGEST) != digest_of(header, meta, memoryview(blob)[start:]):
        raise ValueError("it does not match its checksum (damaged)")
    key, epochs, accuracy = meta.get("key"), meta.get("epochs"), meta.get("val_accuracy")
    if not isinstance(key, str) or type(epochs) is not int or not isinstance(accuracy, float | int | None):
        raise ValueError("its header lacks the key, the epochs or the accuracy")
    return meta


def capture_weights(model: "nn.Module", key: str, epochs: int, val_accuracy: float | None) -> bytes:
    """The sealed weights blob of `model` (any device, any memory format) for genome `key`."""
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in model.state_dict().items()}
    meta = {"format": FORMAT, "key": key, "epochs": epochs, "val_accuracy": val_accuracy}
    return seal(save(tensors, metadata={META_KEY: json.dumps(meta)}))


def stand_in_weights(key: str, epochs: int, val_accuracy: float | None) -> bytes:
    """A sealed blob with no tensors: what an objective that trains no network (`synthetic`) returns in place of
    weights under `search.inherit`, so that the driver stores, checks and ships it as it would real ones."""
    from safetensors.numpy import save

    meta = {"format": FORMAT, "key": key, "epochs": epochs, "val_accuracy": val_accuracy}
    return seal(save({}, metadata={META_KEY: json.dumps(meta)}))


def holds_tensors(blob: bytes) -> bool:
    """Whether a blob holds a network (a stand-in holds none, and is no model to export)."""
    header, _, _ = split(blob)
    return any(name != "__metadata__" for name in header)


def load_weights(blob: bytes, model: "nn.Module") -> dict[str, Any]:
    """Load a checked blob into `model` (built from the blob's architecture); returns its metadata.
    `ValueError` when the blob is damaged or holds another network's tensors."""
    from safetensors.torch import load

    meta = check(blob)
    try:
        model.load_state_dict(load(blob), strict=True)
    except RuntimeError as exc:  # torch's error for missing, unexpected or misshapen tensors
        raise ValueError(f"it holds another network's weights ({str(exc).splitlines()[0]})") from None
    return meta
