"""`nas data fetch bbbc021`: against a real HTTP server on 127.0.0.1 (no test touches the internet) that serves
small stand-in archives, honours `Range`, and can drop a connection part-way through a file."""

import csv
import dataclasses
import hashlib
import io
import json
import socket
import threading
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from nas.cli import main
from nas.data import fetch as fetch_module
from nas.data.download import parse_content_range
from nas.data.fetch import SUMS, fetch_bbbc021, load_manifest
from nas.errors import UserError

SHARED_IMAGE_CSV = ROOT.parent / "shared" / "data" / "bbbc021" / "BBBC021_v1_image.csv"
PLATES = ("Week1/Week1_22123", "Week2/Week2_24121")
IMAGES = 3  # stand-in TIFFs a plate archive holds
HUGE = 10**15


def plate_zip(plate: str) -> bytes:
    """An archive laid out like the real ones: one folder named after the plate, its TIFFs inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(IMAGES):
            z.writestr(f"{plate.split('/')[1]}/F{i:02d}_s1_w1.tif", f"{plate} image {i} ".encode() * 5000)
    return buffer.getvalue()


SERVED = {
    "BBBC021_v1_image.csv": b"TableNumber,ImageNumber\n1,1\n",
    "BBBC021_v1_compound.csv": b"compound,smiles\ntaxol,C\n",
    "BBBC021_v1_moa.csv": b"compound,concentration,moa\nDMSO,0,DMSO\n",
    **{f"BBBC021_v1_images_{p.split('/')[1]}.zip": plate_zip(p) for p in PLATES},
}
ARCHIVE = "BBBC021_v1_images_Week1_22123.zip"


class Server:
    """A local file server with `Range` support that logs each request and can cut a file short."""

    def __init__(self):
        self.files = dict(SERVED)
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header)
        self.sent: Counter = Counter()  # body bytes sent per name
        self.drop_after: dict[str, int] = {}  # name -> bytes sent before the next request of it is cut
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
                if start >= len(body) and start:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if name in server.drop_after:
                    chunk = chunk[: server.drop_after.pop(name)]
                self.wfile.write(chunk)
                server.sent[name] += len(chunk)
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/bbbc/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of(self, name: str) -> list[str | None]:
        return [r for n, r in self.requests if n == name]


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def manifest(tmp_path) -> fetch_module.Manifest:
    """The package's manifest cut down to the served files (two plates)."""
    path = tmp_path / "manifest.json"
    data = json.loads(fetch_module.MANIFEST.read_text())
    data["files"] = [f for f in data["files"] if f["name"] in SERVED]
    for f in data["files"]:
        if "images" in f:
            f["images"] = IMAGES
    path.write_text(json.dumps(data))
    return load_manifest(path)


def fetch(to: Path, server: Server, manifest, **options):
    options.setdefault("free_space", lambda path: HUGE)
    return fetch_bbbc021(to, base_url=server.url, manifest=manifest, **options)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_complete(to: Path) -> None:
    """The layout `bbbc021` reads: metadata in the root, each plate's images in its `<week>/<plate>` folder."""
    for name, body in SERVED.items():
        if name.endswith(".csv"):
            assert (to / name).read_bytes() == body
    for plate in PLATES:
        with zipfile.ZipFile(io.BytesIO(SERVED[f"BBBC021_v1_images_{plate.split('/')[1]}.zip"])) as z:
            expected = {Path(n).name: z.read(n) for n in z.namelist()}
        assert {p.name: p.read_bytes() for p in (to / plate).iterdir()} == expected
    assert not list(to.rglob("*.part")) and not list(to.rglob(".*.unpacking"))


def test_a_full_fetch_lays_out_the_data_records_checksums_and_a_second_run_downloads_nothing(
    tmp_path, server, manifest, capsys
):
    to = tmp_path / "bbbc021"
    fetch(to, server, manifest)
    assert_complete(to)
    assert not (to / "zips").exists() or not any((to / "zips").iterdir())  # archives removed once unpacked
    sums = dict(line.split("  ")[::-1] for line in (to / SUMS).read_text().splitlines())
    assert sums == {(f"zips/{n}" if n.endswith(".zip") else n): sha(body) for n, body in SERVED.items()}
    assert "is complete in" in capsys.readouterr().out

    served = len(server.requests)
    fetch(to, server, manifest)
    assert len(server.requests) == served
    assert_complete(to)


def test_a_fetch_cut_halfway_resumes_from_its_part_without_fetching_its_bytes_again(tmp_path, server, manifest):
    to = tmp_path / "bbbc021"
    size = len(SERVED[ARCHIVE])
    server.drop_after[ARCHIVE] = size // 2
    with pytest.raises(UserError, match="run the command again to resume"):
        fetch(to, server, manifest, attempts=1)
    part = to / "zips" / f"{ARCHIVE}.part"
    assert part.read_bytes() == SERVED[ARCHIVE][: size // 2]
    assert not (to / "zips" / ARCHIVE).exists() and not (to / PLATES[0]).exists()

    fetch(to, server, manifest)
    assert server.of(ARCHIVE) == [None, f"bytes={size // 2}-"]
    assert server.sent[ARCHIVE] == size  # each byte sent once
    assert_complete(to)


def test_a_connection_dropped_within_a_run_is_resumed_by_that_run(tmp_path, server, manifest):
    size = len(SERVED[ARCHIVE])
    server.drop_after[ARCHIVE] = 1000
    fetch(tmp_path, server, manifest)
    assert server.of(ARCHIVE) == [None, "bytes=1000-"] and server.sent[ARCHIVE] == size
    assert_complete(tmp_path)


def test_a_complete_part_whose_rename_was_missed_is_finished_without_its_bytes(tmp_path, server, manifest):
    (tmp_path / "zips").mkdir()
    (tmp_path / "zips" / f"{ARCHIVE}.part").write_bytes(SERVED[ARCHIVE])
    fetch(tmp_path, server, manifest)
    assert server.of(ARCHIVE) == [f"bytes={len(SERVED[ARCHIVE])}-"] and server.sent[ARCHIVE] == 0
    assert_complete(tmp_path)


def test_a_corrupted_file_is_detected_and_fetched_again(tmp_path, server, manifest):
    fetch(tmp_path, server, manifest, keep_zips=True)
    archive, moa = tmp_path / "zips" / ARCHIVE, tmp_path / "BBBC021_v1_moa.csv"
    for path in (archive, moa):  # same size, one byte flipped: only the checksum can tell
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    fetch(tmp_path, server, manifest, keep_zips=True)
    assert len(server.of(ARCHIVE)) == len(server.of("BBBC021_v1_moa.csv")) == 2
    assert len(server.of("BBBC021_v1_image.csv")) == 1
    assert archive.read_bytes() == SERVED[ARCHIVE] and moa.read_bytes() == SERVED["BBBC021_v1_moa.csv"]


def test_a_damaged_archive_is_removed_with_one_line_and_fetched_again_on_the_next_run(tmp_path, server, manifest):
    good = SERVED[ARCHIVE]
    server.files[ARCHIVE] = good[:-200] + bytes(200)  # the central directory zeroed
    with pytest.raises(UserError, match="is damaged.*run the command again"):
        fetch(tmp_path, server, manifest)
    assert not (tmp_path / "zips" / ARCHIVE).exists() and not (tmp_path / PLATES[0]).exists()
    server.files[ARCHIVE] = good
    fetch(tmp_path, server, manifest)
    assert_complete(tmp_path)


def test_not_enough_disk_is_refused_before_anything_is_written(tmp_path, server, manifest, monkeypatch, capsys):
    with pytest.raises(UserError, match=r"not enough disk: .* --force"):
        fetch(tmp_path / "d", server, manifest, free_space=lambda path: 1000)
    assert not (tmp_path / "d").exists() and server.requests == []

    monkeypatch.setattr(fetch_module, "disk_free", lambda path: 10**9)
    assert main(["data", "fetch", "bbbc021", "--to", str(tmp_path / "d"), "--base-url", server.url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not enough disk: BBBC021 needs about 104.9 GB more" in err
    assert not (tmp_path / "d").exists() and server.requests == []


def test_with_force_a_short_disk_is_only_said(tmp_path, server, manifest, capsys):
    fetch(tmp_path, server, manifest, free_space=lambda path: 1000, force=True)
    assert capsys.readouterr().out.splitlines()[0].endswith("GB free in " + str(tmp_path) + ", 0.0 GB free")
    assert_complete(tmp_path)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_one_line_and_exit_2(tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/"
    assert main(["data", "fetch", "bbbc021", "--to", str(tmp_path), "--base-url", url, "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot reach {url}BBBC021_v1_image.csv" in err and "--base-url" in err


def test_a_missing_file_on_the_server_is_one_line(tmp_path, server, manifest):
    del server.files["BBBC021_v1_moa.csv"]
    with pytest.raises(UserError, match="cannot fetch .*BBBC021_v1_moa.csv: HTTP 404"):
        fetch(tmp_path, server, manifest)


def test_dry_run_lists_every_file_and_plate_and_touches_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fetch_module, "disk_free", lambda path: 10**9)
    to = tmp_path / "d"
    url = f"http://127.0.0.1:{closed_port()}/"
    assert main(["data", "fetch", "bbbc021", "--to", str(to), "--dry-run", "--base-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"BBBC021: 58 of 58 files to download (about 44.0 GB), 55 plates to unpack (about 104.1 GB); needs about "
        f"104.9 GB free in {to}, 1.0 GB free"
    )
    fetches = [line for line in lines if line.startswith("fetch  ")]
    assert len(fetches) == 58 and fetches[3] == f"fetch  {url}{ARCHIVE} -> {to / 'zips' / ARCHIVE}"
    assert sum(line.startswith("unpack ") for line in lines) == 55
    assert not to.exists()


def test_the_disk_needed_counts_one_archive_at_a_time_unless_they_are_kept(tmp_path):
    manifest = load_manifest()
    plan = fetch_module.plan_of(manifest, fetch_module.Layout(tmp_path), keep_zips=False)
    images = 39_600 * manifest.image_bytes
    metadata = 3 * manifest.metadata_bytes
    assert plan.needed_bytes(manifest, keep_zips=False) == images + metadata + manifest.archive_bytes
    assert plan.needed_bytes(manifest, keep_zips=True) == images + metadata + 55 * manifest.archive_bytes


@pytest.mark.skipif(not SHARED_IMAGE_CSV.is_file(), reason="needs ../shared/data/bbbc021 (absent in a fresh clone)")
def test_the_manifest_names_every_plate_of_the_image_metadata_with_its_image_count():
    with open(SHARED_IMAGE_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    fields = Counter(r["Image_PathName_DAPI"] for r in rows)
    plates = {e.folder: e for e in load_manifest().entries if e.folder}
    assert {folder: e.images for folder, e in plates.items()} == {folder: 3 * n for folder, n in fields.items()}
    assert all(e.name == f"BBBC021_v1_images_{folder.split('/')[1]}.zip" for folder, e in plates.items())
    metadata = [e.name for e in load_manifest().entries if not e.folder]
    assert metadata == ["BBBC021_v1_image.csv", "BBBC021_v1_compound.csv", "BBBC021_v1_moa.csv"]


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(1, 10**12))
def test_content_range_gives_the_first_byte_and_the_total(first, length, total):
    assert parse_content_range(f"bytes {first}-{first + length}/{total}") == (first, total)
    assert parse_content_range(f"bytes */{total}") == (None, total)
    assert parse_content_range(f"{first}-{total}") == (None, None)


def test_an_archive_short_of_the_images_the_metadata_names_is_refused_and_not_unpacked(tmp_path, server, manifest):
    entries = tuple(dataclasses.replace(e, images=IMAGES + 1) if e.folder else e for e in manifest.entries)
    with pytest.raises(UserError, match=f"holds {IMAGES} files, the image metadata names {IMAGES + 1}"):
        fetch(tmp_path, server, dataclasses.replace(manifest, entries=entries))
    assert not (tmp_path / PLATES[0]).exists()
