"""The rung-state file format (`nas-rung/1`) as far as the driver needs it, without torch.

A rung state is a safetensors blob whose `__metadata__` holds one JSON object under the key `nas` with at least
`format` and `epochs_done` (`nas.evaluate.trainstate` writes the real training's; the synthetic objective writes
a tensor-free one). The driver only stores, checks and ships these bytes: it reads the header here (the 8-byte
little-endian length of a JSON header, then the header) and never deserialises a tensor, so it needs neither
torch nor anything that could run code from a file.

Sealing. Before the driver writes a state under `RUN_DIR/rungs/` it seals it (`seal`): it adds to the `nas`
object the candidate's `key` and a `sha256` of the whole file, header and tensors, computed with the digest's
own 64 characters set to `0`. `check` undoes exactly that: it finds the digest in the raw header bytes (once),
puts the zeros back and hashes every byte of the file again, so any change to any byte (a flipped weight, a
NaN written over a tensor, a field removed from the header, a truncation) is caught, not only changes that
still parse. The key and the epochs are inside what is hashed, so a sealed file of another candidate or of
another rung, copied or renamed into place, is refused by the key or epochs check, not by the checksum. A file
without a digest (written before rung states were sealed) is refused too: a refused state costs only the
retraining of its candidate from epoch 0, which gives the same numbers (the run's determinism rule), while a
trusted bad one changes the search. The checksum guards the file on disk; the bytes travel to a worker as
they were checked, and the worker's loader (`nas.evaluate.trainstate.restore`) reads the same fields.
"""

import hashlib
import json
import re
import struct
from typing import Any

FORMAT = "nas-rung/1"
META_KEY = "nas"
DIGEST = "sha256"
PLACEHOLDER = "0" * 64  # the digest's characters while the digest is computed
HEX64 = re.compile(r"[0-9a-f]{64}")


def split(blob: bytes) -> tuple[dict[str, Any], dict[str, Any], int] | None:
    """(the safetensors header, its `nas` metadata, where the tensor data starts), or None when the blob is not
    a rung state (torn, foreign, garbage)."""
    if len(blob) < 8:
        return None
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8:
        return None
    try:
        header = json.loads(blob[8 : 8 + size])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(header, dict) or not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    if not isinstance(meta.get("epochs_done"), int) or isinstance(meta.get("epochs_done"), bool):
        return None
    return header, meta, 8 + size


def read_header(blob: bytes) -> dict[str, Any] | None:
    """The `nas` metadata of a safetensors blob; None when the blob is not a rung state (torn, foreign, garbage)."""
    parts = split(blob)
    return None if parts is None else parts[1]


def metadata_only(meta: dict[str, Any]) -> bytes:
    """A rung state with no tensors, only `meta` (for objectives whose state is a few numbers)."""
    from safetensors.numpy import save

    return save({}, metadata={META_KEY: json.dumps({"format": FORMAT, **meta})})


def seal(blob: bytes, key: str, epochs: int) -> bytes:
    """`blob` (a rung state an objective returned) with `key` and the file's `sha256` in its `nas` header.

    `ValueError` when the blob is not a rung state, holds other than `epochs` epochs, or names another key."""
    parts = split(blob)
    if parts is None:
        raise ValueError(f"not a rung state (no {FORMAT} header)")
    header, meta, start = parts
    if meta["epochs_done"] != epochs:
        raise ValueError(f"it holds {meta['epochs_done']} epochs, not {epochs}")
    if meta.get("key", key) != key:
        raise ValueError(f"it names candidate {str(meta['key'])[:12]}")
    meta = {name: value for name, value in meta.items() if name != DIGEST}
    meta.update(key=key, **{DIGEST: PLACEHOLDER})
    header["__metadata__"] = {**header["__metadata__"], META_KEY: json.dumps(meta)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header so that the tensors start 8-aligned
    if text.count(PLACEHOLDER.encode()) != 1:
        raise ValueError("its header already holds the checksum placeholder")
    length = struct.pack("<Q", len(text))
    data = memoryview(blob)[start:]
    digest = hashlib.sha256(length)
    digest.update(text)
    digest.update(data)
    return length + text.replace(PLACEHOLDER.encode(), digest.hexdigest().encode()) + data


def check(blob: bytes, key: str, epochs: int) -> str | None:
    """Why `blob` is not the sealed state of `key` after `epochs` epochs (a few words), or None when it is."""
    parts = split(blob)
    if parts is None:
        return f"is not a rung state (no {FORMAT} header: torn or garbage)"
    _, meta, start = parts
    digest = meta.get(DIGEST)
    if not isinstance(digest, str) or not HEX64.fullmatch(digest):
        return "has no checksum"
    head = blob[:start]
    zeroed = head.replace(digest.encode(), PLACEHOLDER.encode())
    if head.count(digest.encode()) != 1 or hashed(zeroed, blob, start) != digest:
        return "does not match its checksum (damaged)"
    if meta.get("key") != key:
        return f"is the state of another candidate ({str(meta.get('key'))[:12]})"
    if meta["epochs_done"] != epochs:
        return f"holds {meta['epochs_done']} epochs, not {epochs}"
    return None


def hashed(head: bytes, blob: bytes, start: int) -> str:
    """sha256 of `head` followed by `blob`'s bytes from `start` (the tensors), without copying them."""
    digest = hashlib.sha256(head)
    digest.update(memoryview(blob)[start:])
    return digest.hexdigest()
