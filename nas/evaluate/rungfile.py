"""The rung-state file format (`nas-rung/1`) as far as the driver needs it, without torch.

A rung state is a safetensors blob whose `__metadata__` holds one JSON object under the key `nas` with at least
`format` and `epochs_done` (`nas.evaluate.trainstate` writes the real training's; the synthetic objective writes
a tensor-free one). The driver only stores, checks and ships these bytes: it reads the header here (the 8-byte
little-endian length of a JSON header, then the header) and never deserialises a tensor, so it needs neither
torch nor anything that could run code from a file.
"""

import json
import struct
from typing import Any

FORMAT = "nas-rung/1"
META_KEY = "nas"


def read_header(blob: bytes) -> dict[str, Any] | None:
    """The `nas` metadata of a safetensors blob; None when the blob is not a rung state (torn, foreign, garbage)."""
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
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("epochs_done"), int):
        return None
    return meta


def metadata_only(meta: dict[str, Any]) -> bytes:
    """A rung state with no tensors, only `meta` (for objectives whose state is a few numbers)."""
    from safetensors.numpy import save

    return save({}, metadata={META_KEY: json.dumps({"format": FORMAT, **meta})})
