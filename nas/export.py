"""`nas export RUN_DIR [--out DIR] [--rank K | --pareto] [--onnx]`: a run's best (or K-th best) network, or every
member of its Pareto front, to predict with or retrain.

Writes, into one folder published all at once (`nas.stagedir`):
- `architecture.yaml`: the genome with the run's fixed parts, plus a `provenance` section (run directory name,
  config name, seed, the step that evaluated it, its rank, genome key, fitness, params, FLOPs and the export
  date, UTC) that `build_model` ignores;
- when the run kept the trained weights of that genome (`RUN_DIR/best/weights.safetensors`, the search's best
  candidate as its search training left it: `nas.run.best_weights`):
  - `model.pt2`: a `torch.export` program of the trained network (`nas.model.program`), eval mode; it takes
    images in the user's units and normalises them inside (`nas.model.preprocess`) with the statistics of the
    run's training split, which is why export loads the run's dataset (from its cache, for the kinds that have
    one);
  - `model.onnx` with `--onnx`: the same network, checked against torch with onnxruntime;
  - `preprocess.json`: class names, channel order, input size and dtype, resize, mean and std (BBBC021: the
    plate statistics), dataset kind, evonas version, and `weights`: `{"source": "search", "epochs": E,
    "val_accuracy": A}` (the candidate's fitness).

A model file with untrained weights is never written: it would predict at chance. Without matching weights (a
run of the `synthetic` objective, a rank other than the best, a damaged weights file) export writes the
architecture alone, says why in one warning line, and exits 0, since the architecture is what it exports and
retraining it is the next step: `nas train EXPORT/architecture.yaml --config RUN_DIR/config.yaml --full --save
DIR`. With `--onnx`, which asks for a model file, that case is a one-line error (exit 2) before anything is
written.

Ranking is `nas.run.runlog.ranked`: `ok` results only, by the one ranking rule (higher fitness, then fewer
parameters, then key).

Where it goes: `--out` defaults to `RUN_DIR/export/` (a new folder in the run directory, which is an append).
Running export again refreshes that default folder as a whole, as long as it holds only export's own files;
an explicit `--out` must be empty or absent, so nothing of the user's is ever overwritten.

`--pareto` (a search with several objectives, `search.objectives`): every member of the front (`RUN_DIR/pareto.json`,
fittest first) goes into a folder of its own under the export folder, named by its place on the front and its key
prefix (`01-3fa9c2d17b04/`), each holding what a single export writes (`provenance` adds `front_rank`): a model
where the run kept that member's trained weights (the best's), the architecture alone for the others. The export
folder is published whole, as a single export is.

`export_command` takes the flags as typed parameters (`nas.cli` passes the parsed ones), so Python code calls it
directly, without the command line's parser; `export_run` is the same without the printing.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nas.config import Config, load_config
from nas.data.folds import cv_protocol
from nas.errors import UserError
from nas.evaluate.result import Result
from nas.genome.architecture import Architecture
from nas.run.best_weights import read_best_weights
from nas.run.snapshot import RunSnapshot, load_snapshot
from nas.stagedir import staged_directory
from nas.yamlfile import dump_yaml

if TYPE_CHECKING:
    from nas.model.preprocess import Preprocess

log = logging.getLogger(__name__)
ARCHITECTURE = "architecture.yaml"
PROGRAM = "model.pt2"
TORCHSCRIPT = "model.ts"  # what earlier exports wrote: owned, so that a refresh replaces such a folder
ONNX = "model.onnx"
PREPROCESS = "preprocess.json"
EXPORT_FILES = (ARCHITECTURE, PROGRAM, TORCHSCRIPT, ONNX, PREPROCESS)
MEMBER = re.compile(r"[0-9]{2,}-[0-9a-f]{12}")  # a front member's folder (`member_folder`)
LABELS = {ARCHITECTURE: "architecture", PROGRAM: "model", ONNX: "onnx", PREPROCESS: "preprocess"}


def default_out(run_dir: Path) -> Path:
    return run_dir / "export"


def provenance_of(snapshot: RunSnapshot, result: Result, rank: int) -> dict[str, Any]:
    """Where the exported architecture came from, enough to find its log line and rerun the search."""
    return {
        "run": snapshot.run.path.resolve().name,
        "config": snapshot.config.name,
        "seed": snapshot.seed,
        "step": result.step,
        "rank": rank,
        "key": result.key,
        "fitness": result.fitness,
        "params": result.params,
        "flops": result.flops,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def architecture_text(arch: Architecture) -> str:
    """The file `load_architecture` reads, with the provenance in block style so that a person can read it."""
    data = arch.to_dict()
    provenance = data.pop("provenance", {})
    header = "# Exported by `nas export`; build_model ignores the provenance section.\n"
    return header + dump_yaml(data) + yaml.safe_dump({"provenance": provenance}, sort_keys=False)


def run_preprocess(snapshot: RunSnapshot, arch: Architecture) -> "Preprocess":
    """The input contract of the run's candidates: its dataset as the search loaded it (validation carved by the
    run's seed), whose training split's statistics the trainer normalised with."""
    from nas.data.loading import load_dataset
    from nas.evaluate.fit_check import check_fits
    from nas.model.preprocess import preprocess_of

    dataset = snapshot.config.dataset
    data = load_dataset(dataset, snapshot.seed)
    check_fits(arch, data, "the exported architecture")
    return preprocess_of(dataset, data)


def write_models(
    arch: Architecture, result: Result, weights: bytes, folder: Path, onnx: bool, pre: "Preprocess"
) -> None:
    """`model.pt2` (and `model.onnx`) of the network with its trained `weights`, with `preprocess.json` beside
    them saying how they were trained.

    torch is imported here, not at the top, so that bad input is answered before paying for its import.
    """
    from nas.evaluate.weightsfile import load_weights
    from nas.model.cost import count_params
    from nas.model.network import build_model
    from nas.model.preprocess import save_preprocess
    from nas.model.program import save_program

    model = build_model(arch)
    try:
        meta = load_weights(weights, model)
    except ValueError as exc:
        raise UserError(f"the run's trained weights of {result.key[:12]} do not fit its architecture: {exc}") from None
    model.eval()
    params = count_params(model)
    if result.params is not None and params != result.params:
        log.warning("the rebuilt network has %d parameters, the run's log says %d", params, result.params)
    save_program(model, pre, folder / PROGRAM)
    if onnx:
        from nas.model.onnx_export import save_onnx

        difference = save_onnx(model, pre, folder / ONNX)
        log.info("model.onnx matches torch within %.2g", difference)
    pre.weights = {"source": "search", "epochs": meta["epochs"], "val_accuracy": meta["val_accuracy"]}
    save_preprocess(pre, folder / PREPROCESS)


def check_export_cost(arch: Architecture, config: Config) -> None:
    """Refuse, before anything is built, an architecture over the run's `limits` (traced at one image)."""
    from nas.model.analytic_cost import check_cost

    check_cost(arch, config.limits, 1, "the exported architecture")


@dataclass(frozen=True)
class Exported:
    """What `export_run` wrote: the architecture (with its provenance), each file's path by name, and why no
    model file was written (empty when one was)."""

    architecture: Architecture
    files: dict[str, Path]
    no_model: str = ""


@dataclass(frozen=True)
class Planned:
    """One candidate to export: its result, architecture (with provenance) and kept weights (None: why not)."""

    result: Result
    architecture: Architecture
    weights: bytes | None
    why: str

    def names(self, onnx: bool) -> list[str]:
        """The files its folder gets."""
        models = [PROGRAM] + ([ONNX] if onnx else []) + [PREPROCESS] if self.weights is not None else []
        return [ARCHITECTURE, *models]

    def write(self, snapshot: RunSnapshot, folder: Path, onnx: bool) -> None:
        (folder / ARCHITECTURE).write_text(architecture_text(self.architecture), encoding="utf-8")
        if self.weights is not None:
            pre = run_preprocess(snapshot, self.architecture)
            write_models(self.architecture, self.result, self.weights, folder, onnx, pre)


def plan(run_dir: Path, snapshot: RunSnapshot, result: Result, provenance: dict[str, Any]) -> Planned:
    """What exporting `result` writes, checked against the run's limits before anything is written."""
    arch = snapshot.architecture(result, provenance)
    check_export_cost(arch, snapshot.config)
    weights, _, why = read_best_weights(run_dir, result.key)
    return Planned(result, arch, weights, why)


def export_run(run_dir: Path, out: Path | None, rank: int, onnx: bool) -> Exported:
    """Write the export folder for the `rank`-th best result of `run_dir`."""
    if onnx:
        from nas.model.onnx_export import require_onnx

        require_onnx()
    snapshot = load_snapshot(run_dir)
    result = snapshot.pick(rank)
    target = out if out is not None else default_out(run_dir)
    refreshable = target.resolve() == default_out(run_dir).resolve()
    planned = plan(run_dir, snapshot, result, provenance_of(snapshot, result, rank))
    if planned.weights is None and onnx:
        raise UserError(f"--onnx: no model to write, {planned.why}; retrain with `nas train --full --onnx --save DIR`")
    with staged_directory(target, refreshable=refreshable, owned=EXPORT_FILES) as staging:
        planned.write(snapshot, staging, onnx)
    return Exported(planned.architecture, {name: target / name for name in planned.names(onnx)}, planned.why)


def member_folder(front_rank: int, key: str) -> str:
    """The folder of the `front_rank`-th member of the front (1 = fittest): `01-3fa9c2d17b04`."""
    return f"{front_rank:02d}-{key[:12]}"


def front_members(snapshot: RunSnapshot) -> list[Result]:
    """The run's front, fittest first (as `RUN_DIR/pareto.json` lists it); a `UserError` for one objective."""
    from nas.run.pareto_file import front_of

    objectives = snapshot.config.search.objectives or ["fitness"]
    if len(objectives) < 2:
        raise UserError("--pareto: this run has one objective (search.objectives), so no front; export with --rank")
    front = front_of(snapshot.results, objectives)
    if not front:
        raise UserError(f"--pareto: {snapshot.run.path} has no feasible ok result yet, so no front")
    return front


def export_front(run_dir: Path, out: Path | None, onnx: bool) -> list[Exported]:
    """Write one folder per member of the front of `run_dir` under the export folder (module docstring)."""
    snapshot = load_snapshot(run_dir)
    ranks = {r.key: i for i, r in enumerate(snapshot.best_first, start=1)}
    planned = []
    for front_rank, result in enumerate(front_members(snapshot), start=1):
        provenance = {**provenance_of(snapshot, result, ranks.get(result.key, 0)), "front_rank": front_rank}
        planned.append(plan(run_dir, snapshot, result, provenance))
    if onnx:
        from nas.model.onnx_export import require_onnx

        require_onnx()
        if all(p.weights is None for p in planned):
            raise UserError(f"--onnx: no member of the front has kept weights ({planned[0].why}); retrain one with "
                            "`nas train --full --onnx --save DIR`")  # fmt: skip
    target = out if out is not None else default_out(run_dir)
    folders = [member_folder(i, p.result.key) for i, p in enumerate(planned, start=1)]
    owned = [*EXPORT_FILES, *(p.name for p in target.glob("*") if MEMBER.fullmatch(p.name) and p.is_dir())]
    refreshable = target.resolve() == default_out(run_dir).resolve()
    with staged_directory(target, refreshable=refreshable, owned=owned) as staging:
        for folder, member in zip(folders, planned, strict=True):
            (staging / folder).mkdir()
            member.write(snapshot, staging / folder, onnx and member.weights is not None)
    return [Exported(p.architecture, {n: target / f / n for n in p.names(onnx)}, p.why)
            for f, p in zip(folders, planned, strict=True)]  # fmt: skip


def describe(run_dir: Path, exported: Exported) -> str:
    """The lines `nas export` prints: what was exported, where each file went, and how to retrain it."""
    prov, files = exported.architecture.provenance, exported.files
    params = f"{prov['params']:,}" if prov["params"] is not None else "?"
    lines = [
        f"exported rank {prov['rank']} of run {prov['run']}: fitness {prov['fitness']:.4f}, {params} params, "
        f"key {prov['key'][:12]}"
    ]
    lines += [f"{LABELS[name]:<13} {path}" for name, path in files.items()]
    train = f"nas train {files[ARCHITECTURE]} --config {run_dir / 'config.yaml'}"
    cv = cv_protocol(load_config(run_dir / "config.yaml").dataset.name)  # the protocol the dataset prescribes
    if cv is not None:
        lines.append(f"evaluate with {train} --cv {cv} --save {run_dir / cv}")
    lines.append(f"retrain with  {train} --full --save {run_dir / 'retrained'}")
    model = files[ARCHITECTURE].parent if PROGRAM in files else run_dir / "retrained"
    lines.append(f"{'predict with' if PROGRAM in files else 'then predict'}  nas predict {model} IMAGES_OR_FOLDER...")
    return "\n".join(lines)


def describe_front(exported: list[Exported]) -> str:
    """The lines `nas export --pareto` prints: one per member, with its folder and whether it has a model."""
    lines = [f"exported the Pareto front of run {exported[0].architecture.provenance['run']}: {len(exported)} members"]
    for member in exported:
        prov, folder = member.architecture.provenance, member.files[ARCHITECTURE].parent
        params = f"{prov['params']:,}" if prov["params"] is not None else "?"
        kind = "model" if PROGRAM in member.files else "architecture only"
        lines.append(f"  {folder}  fitness {prov['fitness']:.4f}, {params} params ({kind})")
    return "\n".join(lines)


def export_command(
    run_dir: str | Path, *, out: str | Path | None = None, rank: int = 1, onnx: bool = False, pareto: bool = False
) -> int:
    """`nas export RUN_DIR [--out DIR] [--rank K | --pareto] [--onnx]`: export and print what went where; returns
    0."""
    folder = Path(run_dir)
    if pareto:
        if rank != 1:
            raise UserError("--pareto exports every member of the front; it takes no --rank")
        print(describe_front(export_front(folder, Path(out) if out else None, onnx)), flush=True)
        return 0
    exported = export_run(folder, Path(out) if out else None, rank, onnx)
    if exported.no_model:
        log.warning(
            "no model file written: %s; retrain the architecture (`nas train --full`, below)", exported.no_model
        )
    print(describe(folder, exported), flush=True)
    return 0
