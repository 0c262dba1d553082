"""One file over HTTP(S), resumable, with the standard library alone (`urllib`): no dependency for a data fetch.

The bytes go to `<dest>.part`. When a `.part` is there already, the request asks for the rest of the file
(`Range: bytes=<size of the part>-`) and appends what a 206 answer brings; a server that ignores the range (200)
sends the whole file, which replaces the part. Only a complete file, as long as the server announced, is renamed
to `dest` (`os.replace`), so `dest` is never a torn file and an interrupted run (network drop, Ctrl-C, SIGKILL)
loses nothing it had: the next run resumes from the part. A connection dropped mid-file is retried from the
part a few times in the same call; a server that cannot be reached, an HTTP error and a drop past the retries
are a `UserError` (one line, exit 2), since the remedy (the network, the address, running again) is the user's.
"""

import hashlib
import http.client
import logging
import os
import re
import sys
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from nas.atomicfile import writing
from nas.errors import UserError
from nas.version import __version__

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60.0  # per socket operation: a stalled connection counts as dropped and is resumed
ATTEMPTS = 3
CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+)")


class Dropped(Exception):
    """The connection ended before the file did; what arrived is kept in the part."""


class PastTheEnd(Exception):
    """HTTP 416 to a ranged request: the part already holds `total` bytes or more (None: size not given)."""

    def __init__(self, total: int | None):
        self.total = total


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def parse_content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a `Content-Range` header (`bytes 100-199/1000`, `bytes */1000`); None for what
    it does not say, or for a header that is absent or malformed."""
    m = CONTENT_RANGE.fullmatch((header or "").strip())
    if not m:
        return None, None
    return (int(m[1]) if m[1] is not None else None), int(m[3])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def download(url: str, dest: Path, *, attempts: int = ATTEMPTS, progress: bool = True) -> str:
    """Fetch `url` to `dest` through `dest.part` (resumed when present); returns the file's sha256 (hex)."""
    part = part_path(dest)
    for attempt in range(1, attempts + 1):
        try:
            fetch_part(url, part, progress)
            break
        except Dropped as exc:
            if attempt == attempts:
                raise UserError(
                    f"download of {url} stopped at {size_of(part):,} bytes ({exc}); {part} keeps them: run the "
                    "command again to resume"
                ) from None
            log.warning("%s: %s; resuming from byte %d", url, exc, size_of(part))
    digest = sha256_of(part)
    with writing(dest):
        os.replace(part, dest)
    return digest


def open_url(url: str, start: int):
    """The response to a GET of `url` from byte `start`."""
    headers = {"User-Agent": f"evonas/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as exc:
        _, total = parse_content_range(exc.headers.get("Content-Range"))
        if exc.code == 416 and start:
            raise PastTheEnd(total) from None
        raise UserError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"cannot reach {url}: {reason}; check the network, or name a mirror with --base-url") from None


def fetch_part(url: str, part: Path, progress: bool) -> None:
    """Bring `part` up to the whole file, from its current size; `Dropped` when the connection ends early."""
    have = size_of(part)
    try:
        response = open_url(url, have)
    except PastTheEnd as exc:
        if exc.total == have:  # the part is the whole file: only its rename was missing
            return
        log.warning("%s holds %d bytes, the file on the server %s: fetching it anew", part, have, exc.total)
        part.unlink()
        have, response = 0, open_url(url, 0)
    with response:
        first, total = parse_content_range(response.headers.get("Content-Range"))
        if response.status == 206:
            if first != have:
                raise UserError(f"{url}: the server sent bytes from {first}, asked for bytes from {have}")
            start = have
        else:  # the whole file, from its first byte: the range was ignored (or not asked for)
            start, length = 0, response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with writing(part), open(part, "ab" if start else "wb") as f:
            bar = tqdm(total=total, initial=start, desc=part.name.removesuffix(".part"), unit="B", unit_scale=True,
                       unit_divisor=1024, file=sys.stderr, disable=None if progress else True, leave=False)  # fmt: skip
            with bar:
                while chunk := read_chunk(response):
                    f.write(chunk)
                    bar.update(len(chunk))
    got = size_of(part)
    if total is not None and got != total:
        raise Dropped(f"{got:,} of {total:,} bytes")


def read_chunk(response) -> bytes:
    """The next chunk of the body; a reset, a timeout or a body cut short is `Dropped`."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise Dropped(f"{type(exc).__name__}: {exc}") from None
