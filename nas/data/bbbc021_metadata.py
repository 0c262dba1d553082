"""BBBC021 metadata: the two Broad CSVs parsed, joined and filtered into the fields the protocol uses.

`BBBC021_v1_image.csv` has one row per field of view (three channel TIFFs); `BBBC021_v1_moa.csv` maps the 103
annotated treatments (compound, concentration) to 12 mechanism-of-action classes, plus `DMSO,0,DMSO`. The
protocol of Kensert et al. (2019), reproduced here without any image:

- join image rows to MoA rows on (compound, concentration), concentrations compared as numbers
  ("0.300000" in one file is "0.3" in the other): 3,848 fields, 2,528 of them not DMSO;
- taxol, the positive control on every plate, is kept only in the Week1 wells D03, D04 and D05 (three
  concentrations on three plates); the week is the plate name's prefix up to the first underscore
  (`Week1_22123` is Week1, `Week10_40111` is not): 1,208 fields in 103 treatments of 38 compounds remain;
- DMSO is not a class: its fields are kept apart, as the per-plate normalisation reference.

Everything downstream (folds, `nas data summary`, the image cache key) works from a `Bbbc021Table`, so the
counts can be checked on the real metadata without the 40 GB of images.
"""

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nas.errors import UserError

IMAGE_CSV = "BBBC021_v1_image.csv"
MOA_CSV = "BBBC021_v1_moa.csv"
CHANNELS = ("Actin", "Tubulin", "DAPI")
IMAGE_COLUMNS = (
    *(f"Image_{kind}_{channel}" for channel in CHANNELS for kind in ("PathName", "FileName")),
    "Image_Metadata_Plate_DAPI",
    "Image_Metadata_Well_DAPI",
    "Replicate",
    "Image_Metadata_Compound",
    "Image_Metadata_Concentration",
)
MOA_COLUMNS = ("compound", "concentration", "moa")
DMSO = "DMSO"
TAXOL = "taxol"
TAXOL_WEEK = "Week1"
TAXOL_WELLS = ("D03", "D04", "D05")


@dataclass(frozen=True)
class Field:
    """One field of view: its place on the plate, its treatment, and its three channel files (Actin, Tubulin,
    DAPI, relative to the image root)."""

    plate: str
    well: str
    replicate: int
    compound: str
    concentration: float
    moa: str
    paths: tuple[str, str, str]

    @property
    def week(self) -> str:
        return week_of(self.plate)

    @property
    def treatment(self) -> tuple[str, float]:
        return (self.compound, self.concentration)


@dataclass(frozen=True)
class Bbbc021Table:
    """The protocol's fields (annotated, not DMSO, taxol filtered) and the DMSO fields, in CSV order."""

    fields: tuple[Field, ...]
    dmso: tuple[Field, ...]
    joined: int
    digest: str

    @property
    def classes(self) -> list[str]:
        return sorted({f.moa for f in self.fields})

    @property
    def compounds(self) -> list[str]:
        return sorted({f.compound for f in self.fields})

    @property
    def treatments(self) -> list[tuple[str, float]]:
        return sorted({f.treatment for f in self.fields})

    @property
    def plates(self) -> list[str]:
        return sorted({f.plate for f in self.fields})

    def dmso_of(self, plate: str) -> list[Field]:
        return [f for f in self.dmso if f.plate == plate]


def week_of(plate: str) -> str:
    """`Week1_22123` -> `Week1` (a prefix test would wrongly put Week10 plates in Week1)."""
    return plate.split("_", 1)[0]


def keep_taxol(field: Field) -> bool:
    """The taxol filter: only the Week1 wells D03-D05 survive; other compounds pass untouched."""
    return field.compound != TAXOL or (field.week == TAXOL_WEEK and field.well in TAXOL_WELLS)


def read_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV that must carry `columns`; a missing file or column is a `UserError`."""
    if not path.is_file():
        raise UserError(f"BBBC021 metadata file not found: {path} (set dataset.metadata to its folder)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
            yield from enumerate(reader, start=2)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {path}: {type(exc).__name__}: {exc}".replace("\n", " ")) from None


def number(text: str | None, path: Path, line: int, column: str) -> float:
    try:
        return float(text or "")
    except ValueError:
        raise UserError(f"{path}, line {line}: {column} must be a number, got {text!r}") from None


def read_moa(path: Path) -> dict[tuple[str, float], str]:
    """(compound, concentration) -> MoA class, DMSO included."""
    return {
        (row["compound"], number(row["concentration"], path, line, "concentration")): row["moa"]
        for line, row in read_rows(path, MOA_COLUMNS)
    }


def field_of(row: dict[str, str], moa: str, path: Path, line: int) -> Field:
    replicate = number(row["Replicate"], path, line, "Replicate")
    actin, tubulin, dapi = (f"{row[f'Image_PathName_{c}']}/{row[f'Image_FileName_{c}']}" for c in CHANNELS)
    return Field(
        plate=row["Image_Metadata_Plate_DAPI"],
        well=row["Image_Metadata_Well_DAPI"],
        replicate=int(replicate),
        compound=row["Image_Metadata_Compound"],
        concentration=number(row["Image_Metadata_Concentration"], path, line, "Image_Metadata_Concentration"),
        moa=moa,
        paths=(actin, tubulin, dapi),
    )


def file_digest(*paths: Path) -> str:
    """sha256 over the files' bytes: the cache key follows the metadata's content, not its location."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def load_table(metadata: str | Path) -> Bbbc021Table:
    """Parse, join and filter the two CSVs in the folder `metadata` (see the module docstring)."""
    folder = Path(metadata)
    image_csv, moa_csv = folder / IMAGE_CSV, folder / MOA_CSV
    moa = read_moa(moa_csv)
    kept, dmso, joined = [], [], 0
    for line, row in read_rows(image_csv, IMAGE_COLUMNS):
        concentration = number(row["Image_Metadata_Concentration"], image_csv, line, "Image_Metadata_Concentration")
        key = (row["Image_Metadata_Compound"], concentration)
        if key not in moa:
            continue
        joined += 1
        field = field_of(row, moa[key], image_csv, line)
        if field.compound == DMSO:
            dmso.append(field)
        elif keep_taxol(field):
            kept.append(field)
    if not kept:
        raise UserError(f"{image_csv}: no field joins an annotated treatment of {moa_csv}")
    return Bbbc021Table(tuple(kept), tuple(dmso), joined, file_digest(image_csv, moa_csv))
