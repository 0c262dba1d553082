"""BBBC021 preprocessing throughput: fields/s building the crop cache (1 worker and a pool), and reading it back.

Writes synthetic full-size fields (three 1280x1024 16-bit TIFFs each, noise around a plate offset) and the two
metadata CSVs naming them into a temporary folder, then times `nas.data.bbbc021_preprocess.preprocessed_crops`:
cold (no cache: DMSO statistics, then normalise, crop 2x2, resize, float16, atomic write) with one worker and
with a pool, and warm (the cache entry read back). The TIFFs were just written, so they are in the page cache:
this measures decoding and compute, not the disk. Prints a table and one JSON line with the machine and date.

    .venv/bin/python benchmarks/bbbc021_preprocess.py [--fields 48] [--dmso 8] [--plates 2] [--size 128]
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import machine  # noqa: E402
from nas.config import DatasetConfig  # noqa: E402
from nas.data.bbbc021_metadata import CHANNELS, IMAGE_COLUMNS, IMAGE_CSV, MOA_CSV, load_table  # noqa: E402
from nas.data.bbbc021_preprocess import preprocessed_crops  # noqa: E402

HEIGHT, WIDTH = 1024, 1280
CLASSES = ("Actin disruptors", "DNA damage", "Eg5 inhibitors")


def write_dataset(folder: Path, fields: int, dmso: int, plates: int) -> None:
    """`fields` treated fields and `dmso` DMSO fields per plate, as the real CSVs would name them."""
    rng = np.random.default_rng(0)
    moa_rows = [("DMSO", 0, "DMSO")] + [(f"compound{k}", 1, moa) for k, moa in enumerate(CLASSES)]
    with (folder / MOA_CSV).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["compound", "concentration", "moa"])
        writer.writerows(moa_rows)
    rows = []
    for p in range(plates):
        plate = f"Week1_{22000 + p}"
        for i in range(fields // plates + dmso):
            compound = "DMSO" if i < dmso else f"compound{i % len(CLASSES)}"
            well = f"{'BCDEFG'[i // 10 % 6]}{i % 10 + 2:02d}"
            concentration = 0 if compound == "DMSO" else 1
            row = {"Image_Metadata_Plate_DAPI": plate, "Image_Metadata_Well_DAPI": well, "Replicate": 1,
                   "Image_Metadata_Compound": compound, "Image_Metadata_Concentration": concentration}  # fmt: skip
            for channel in CHANNELS:
                name = f"{well}_s{i}_{channel}.tif"
                row[f"Image_PathName_{channel}"], row[f"Image_FileName_{channel}"] = f"Week1/{plate}", name
                path = folder / "Week1" / plate / name
                path.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(path, rng.normal(800 + 200 * p, 150, (HEIGHT, WIDTH)).clip(0, 65535).astype(np.uint16))
            rows.append(row)
    with (folder / IMAGE_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=IMAGE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def timed(config: DatasetConfig) -> float:
    table = load_table(config.metadata)
    start = time.perf_counter()
    preprocessed_crops(config, table)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=48, help="treated fields in all (the protocol's images)")
    parser.add_argument("--dmso", type=int, default=8, help="DMSO fields per plate (read for the statistics)")
    parser.add_argument("--plates", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="dataset.resize")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the pool's size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_dataset(folder, args.fields, args.dmso, args.plates)
        fields = len(load_table(folder).fields)
        read = fields + args.dmso * args.plates
        rows = []
        for label, workers in (("cold, 1 worker", 1), (f"cold, {args.workers} workers", args.workers)):
            cfg = DatasetConfig(name="bbbc021", root=tmp, metadata=tmp, cache_dir=f"{tmp}/cache-{workers}",
                                resize=args.size, workers=workers)  # fmt: skip
            rows.append((label, workers, timed(cfg)))
        rows.append(("warm (cache)", args.workers, timed(cfg)))
    print(f"BBBC021 preprocessing: {fields} fields (+{read - fields} DMSO read), 1280x1024 -> 4 x {args.size}px")
    print(f"{'run':<20} {'seconds':>8} {'fields/s':>9}")
    results = []
    for label, workers, seconds in rows:
        print(f"{label:<20} {seconds:>8.2f} {fields / seconds:>9.1f}")
        results.append({"run": label, "workers": workers, "seconds": round(seconds, 3),
                        "fields_per_s": round(fields / seconds, 2)})  # fmt: skip
    line = {"benchmark": "bbbc021_preprocess", "fields": fields, "dmso_fields_read": read - fields,
            "size": args.size, "results": results, "machine": machine()}  # fmt: skip
    print(json.dumps(line))


if __name__ == "__main__":
    main()
