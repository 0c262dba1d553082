"""`nas data fetch bbbc021 --to DIR`: the BBBC021 image set from its public address, in the layout `bbbc021` reads.

What is fetched is the package's manifest, `nas/data/bbbc021_manifest.json`: the three metadata CSVs and the
55 plate archives `BBBC021_v1_images_<plate>.zip` (names, plate folders and image counts as in
`BBBC021_v1_image.csv`), from https://data.broadinstitute.org/bbbc/BBBC021/ unless `--base-url` names a mirror.
The layout it leaves, for `dataset.root: DIR` (the metadata folder defaults to the root):

    DIR/BBBC021_v1_image.csv, BBBC021_v1_compound.csv, BBBC021_v1_moa.csv
    DIR/Week1/Week1_22123/*.tif ...   one folder per plate, `<Image_PathName_X>` of the image CSV
    DIR/zips/*.zip                    while a plate is unpacked (kept after it with --keep-zips)
    DIR/SHA256SUMS                    sha256 of each file downloaded, `sha256sum -c` format

Disk: the archives are about 0.8 GB each (44 GB in all) and unpack to about 104 GB of 16-bit TIFFs (39,600
files of 1280x1024). Each archive is removed once unpacked, so the peak is the unpacked set plus one archive;
`--keep-zips` keeps them all (about 150 GB). Before anything is written the command says what it needs and what
is free, and refuses, one line and exit 2, when the free space is short, unless `--force`.

Checksums: the collection publishes none, and no file sizes, so the manifest records none (its `bytes` and
`sha256` are null, and checked where a mirror's manifest fills them in). The sha256 of every file downloaded
goes to `DIR/SHA256SUMS`; a later run checks each file it still needs against it, and a file that differs is
deleted and fetched again. A plate archive that fails its CRC while unpacking is deleted too (fetch it again by
running the command again). Downloads resume from their `.part` files (`nas.data.download`); a plate folder is
unpacked beside its place and renamed into it when complete, so a run stopped at any point is simply run again.
"""

import json
import logging
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from nas.atomicfile import atomic_write_text, move_folder_aside, writing
from nas.data.download import ATTEMPTS, download, part_path, sha256_of, size_of
from nas.errors import UserError

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("bbbc021_manifest.json")
SUMS = "SHA256SUMS"
ZIPS = "zips"
GB = 1e9


@dataclass(frozen=True)
class Entry:
    """One file of the manifest; `folder` and `images` are set for a plate archive (where it unpacks, and how
    many files it holds), and `size` and `sha256` where known."""

    name: str
    size: int | None = None
    sha256: str | None = None
    folder: str | None = None
    images: int = 0


@dataclass(frozen=True)
class Manifest:
    base_url: str
    entries: tuple[Entry, ...]
    archive_bytes: int  # estimate for an archive of unknown size
    image_bytes: int  # estimate of one unpacked image file
    metadata_bytes: int  # estimate for a metadata file of unknown size


def load_manifest(path: Path = MANIFEST) -> Manifest:
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = tuple(
        Entry(f["name"], f.get("bytes"), f.get("sha256"), f.get("folder"), f.get("images", 0)) for f in data["files"]
    )
    estimate = data["estimate_bytes"]
    return Manifest(data["base_url"], entries, estimate["archive"], estimate["image"], estimate["metadata"])


def disk_free(path: Path) -> int:
    """Free bytes on the file system that holds `path`, or would hold it (its nearest existing folder)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Layout:
    """Where each part of the data set goes under the target folder."""

    root: Path

    def file(self, entry: Entry) -> Path:
        return self.root / ZIPS / entry.name if entry.folder else self.root / entry.name

    def relative(self, entry: Entry) -> str:
        return self.file(entry).relative_to(self.root).as_posix()

    def unpacked(self, entry: Entry) -> bool:
        """Whether the plate folder holds its images (renamed into place only when complete)."""
        folder = self.root / entry.folder
        return folder.is_dir() and sum(1 for p in folder.iterdir() if p.is_file()) >= entry.images


@dataclass(frozen=True)
class Plan:
    """What a run has left to do: files to download (with bytes already in their parts) and plates to unpack."""

    downloads: list[tuple[Entry, int]]
    unpacks: list[Entry]
    present: list[Entry]

    def download_bytes(self, manifest: Manifest) -> int:
        return sum(estimate(e, manifest) - have for e, have in self.downloads)

    def needed_bytes(self, manifest: Manifest, keep_zips: bool) -> int:
        """Free space the rest of the run needs: the metadata, the images it unpacks, and the archives (all of
        them with `keep_zips`, else the largest, as each is removed once unpacked)."""
        archives = [estimate(e, manifest) - have for e, have in self.downloads if e.folder]
        metadata = sum(estimate(e, manifest) - have for e, have in self.downloads if not e.folder)
        images = sum(e.images for e in self.unpacks) * manifest.image_bytes
        return metadata + images + (sum(archives) if keep_zips else max(archives, default=0))


def estimate(entry: Entry, manifest: Manifest) -> int:
    if entry.size is not None:
        return entry.size
    return manifest.archive_bytes if entry.folder else manifest.metadata_bytes


def plan_of(manifest: Manifest, layout: Layout, keep_zips: bool) -> Plan:
    """What is left, from what is on disk (checksums are checked later, when a file is used)."""
    downloads, unpacks, present = [], [], []
    for entry in manifest.entries:
        unpacked = entry.folder is not None and layout.unpacked(entry)
        if entry.folder and not unpacked:
            unpacks.append(entry)
        needed = not entry.folder or not unpacked or keep_zips
        if needed and not layout.file(entry).is_file():
            downloads.append((entry, size_of(part_path(layout.file(entry)))))
        else:
            present.append(entry)
    return Plan(downloads, unpacks, present)


def read_sums(path: Path) -> dict[str, str]:
    """`SHA256SUMS` as {relative path: sha256}; a missing file is an empty one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split(maxsplit=1) for line in lines if line.strip())
    return {name.lstrip("*"): digest for digest, name in pairs}


def write_sums(path: Path, sums: dict[str, str]) -> None:
    atomic_write_text(path, "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))


def describe(plan: Plan, manifest: Manifest, layout: Layout, keep_zips: bool, free: int) -> str:
    needed = plan.needed_bytes(manifest, keep_zips)
    return (
        f"BBBC021: {len(plan.downloads)} of {len(manifest.entries)} files to download (about "
        f"{plan.download_bytes(manifest) / GB:.1f} GB), {len(plan.unpacks)} plates to unpack (about "
        f"{sum(e.images for e in plan.unpacks) * manifest.image_bytes / GB:.1f} GB); needs about {needed / GB:.1f} GB "
        f"free in {layout.root}, {free / GB:.1f} GB free"
    )


def dry_run_lines(plan: Plan, manifest: Manifest, layout: Layout, base_url: str) -> list[str]:
    lines = []
    for entry, have in plan.downloads:
        resume = f", resuming from byte {have:,}" if have else ""
        lines.append(f"fetch  {base_url}{entry.name} -> {layout.file(entry)}{resume}")
    lines += [f"check  {layout.file(e)}" for e in plan.present if layout.file(e).is_file()]
    lines += [f"unpack {layout.root / e.folder}" for e in plan.unpacks]
    return lines


def fetch_bbbc021(
    to: Path,
    *,
    base_url: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    keep_zips: bool = False,
    manifest: Manifest | None = None,
    free_space: Callable[[Path], int] | None = None,
    attempts: int = ATTEMPTS,
) -> Plan:
    """Bring `to` up to the whole data set (see the module docstring); returns the plan it started from.

    `free_space` measures the free bytes of a folder's file system (default `disk_free`) and `attempts` bounds
    the tries of one file in one run: parameters so that a test can run the refusal and a resumed download
    without filling a disk."""
    manifest = manifest or load_manifest()
    base = (base_url or manifest.base_url).rstrip("/") + "/"
    layout = Layout(Path(to))
    if layout.root.exists() and not layout.root.is_dir():
        raise UserError(f"--to {layout.root} is a file, not a folder")
    plan = plan_of(manifest, layout, keep_zips)
    free = (free_space or disk_free)(layout.root)
    print(describe(plan, manifest, layout, keep_zips, free))
    if dry_run:
        print("\n".join(dry_run_lines(plan, manifest, layout, base)))
        return plan
    needed = plan.needed_bytes(manifest, keep_zips)
    if needed > free and not force:
        raise UserError(
            f"not enough disk: BBBC021 needs about {needed / GB:.1f} GB more in {layout.root}, {free / GB:.1f} GB are "
            "free; free some space, choose another --to, or pass --force to try anyway"
        )
    sums_path = layout.root / SUMS
    sums = read_sums(sums_path)
    for entry in manifest.entries:
        fetch_entry(entry, layout, base, sums, sums_path, keep_zips, attempts)
    print(f"BBBC021 is complete in {layout.root}: set dataset.root to it")
    return plan


def fetch_entry(
    entry: Entry, layout: Layout, base: str, sums: dict[str, str], sums_path: Path, keep_zips: bool, attempts: int
) -> None:
    """One manifest entry: checked (or downloaded), and for a plate archive unpacked, then removed unless kept."""
    path = layout.file(entry)
    unpacked = entry.folder is not None and layout.unpacked(entry)
    if entry.folder and unpacked and not keep_zips:
        remove_archive(path)
        return
    if path.is_file() and not intact(entry, path, layout.relative(entry), sums, sums_path):
        log.warning("%s differs from its checksum: fetching it again", path)
        path.unlink()
    if not path.is_file():
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        digest = download(base + entry.name, path, attempts=attempts)
        check_download(entry, path, digest)
        sums[layout.relative(entry)] = digest
        write_sums(sums_path, sums)
    if entry.folder and not unpacked:
        unpack(path, layout.root / entry.folder, entry.images)
    if entry.folder and not keep_zips:
        remove_archive(path)


def intact(entry: Entry, path: Path, relative: str, sums: dict[str, str], sums_path: Path) -> bool:
    """Whether `path` matches the manifest's size and checksum, else the one recorded in SHA256SUMS. A file that
    neither records (put there by hand) is taken as it is, and its checksum recorded for later runs."""
    if entry.size is not None and size_of(path) != entry.size:
        return False
    digest = sha256_of(path)
    expected = entry.sha256 or sums.get(relative)
    if expected is None:
        sums[relative] = digest
        write_sums(sums_path, sums)
        return True
    return digest == expected


def check_download(entry: Entry, path: Path, digest: str) -> None:
    """A finished download that contradicts the manifest is removed (it would only fail again later)."""
    size = size_of(path)
    if (entry.size is None or size == entry.size) and (entry.sha256 is None or digest == entry.sha256):
        return
    path.unlink()
    raise UserError(
        f"{entry.name} downloaded ({size:,} bytes, sha256 {digest}) but the manifest records "
        f"{entry.size} bytes, sha256 {entry.sha256}; it was removed: check --base-url, or run again"
    )


def remove_archive(path: Path) -> None:
    if path.is_file():
        path.unlink()
        log.info("removed %s (unpacked)", path)


def unpack(archive: Path, folder: Path, images: int) -> None:
    """The archive's files, flattened into `folder` (the plate's `<Image_PathName_X>`, whatever folder they sit
    in inside the archive), through `.<name>.unpacking` beside it, renamed into place when complete."""
    staging = folder.with_name(f".{folder.name}.unpacking")
    with writing(staging):
        if staging.exists():
            shutil.rmtree(staging)  # a previous run's unfinished unpacking
        staging.mkdir(parents=True)
    try:
        count = extract_flat(archive, staging)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink()
        raise UserError(
            f"{archive} is damaged ({exc}); it was removed: run the command again to fetch it anew"
        ) from None
    if count < images:
        raise UserError(f"{archive} holds {count} files, the image metadata names {images} for {folder.name}")
    with writing(folder):
        if folder.exists():
            aside = move_folder_aside(folder)
            log.warning("%s was incomplete%s", folder, f"; moved to {aside}" if aside else "")
        staging.rename(folder)


def extract_flat(archive: Path, staging: Path) -> int:
    """Every file of `archive` (not macOS resource forks) as `staging/<its base name>`; returns their count. Base
    names alone are written, so no entry (`../x`, an absolute path) can land outside `staging`."""
    with zipfile.ZipFile(archive) as z:
        members = [m for m in z.infolist() if not m.is_dir() and "__MACOSX" not in PurePosixPath(m.filename).parts]
        bar = tqdm(members, desc=f"unpack {archive.name}", unit="file", file=sys.stderr, disable=None, leave=False)
        for member in bar:
            target = staging / PurePosixPath(member.filename).name
            with z.open(member) as source, writing(target), open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    return len(members)


def fetch_command(
    dataset: str, to: str | Path, base_url: str | None = None, dry_run: bool = False, force: bool = False,
    keep_zips: bool = False,
) -> int:  # fmt: skip
    """`nas data fetch DATASET --to DIR`: returns the exit code; bad input is a `UserError`."""
    if dataset != "bbbc021":
        raise UserError(f"can fetch bbbc021 only, not {dataset!r}")
    fetch_bbbc021(Path(to), base_url=base_url, dry_run=dry_run, force=force, keep_zips=keep_zips)
    return 0
