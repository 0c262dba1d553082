"""Security rules of DESIGN.md section 8, each checked two ways where it can be: a scan of the source (so a new
call site cannot slip in) and the behaviour (so the rule holds where it matters).

- YAML only through `yaml.safe_load`: no `yaml.load`, `unsafe_load`, `full_load`, `Loader`/`FullLoader` in
  `nas/`; a `!!python/` tag is refused and its payload never runs.
- Weights only through `torch.load(..., weights_only=True)`: every `torch.load` call in `nas/` says so (and
  `numpy.load` says `allow_pickle=False`); a weights file holding a `__reduce__` payload is refused by the
  loader and by `nas baseline` with exit 2 and one line, and the payload never runs (a control load without
  `weights_only` shows that it would have).
- No pickle in a run directory after a search, an export, a retrain into it and a report.
- The embedded Ray keeps token authentication: every gRPC port refuses a call without the token and answers
  with it. `tests/test_ray_embedded.py` covers the dashboard (loopback, 401/403 without the token).
"""

import ast
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import run_nas
from reliability_runs import ROOT, cli, environ_without_ray, synthetic_config

from nas.errors import UserError
from nas.transfer.weights import read_state_dict
from nas.yamlfile import load_yaml_mapping

PACKAGE = ROOT / "nas"
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "Loader",
               "FullLoader", "UnsafeLoader", "add_constructor", "add_multi_constructor", "CLoader"}  # fmt: skip
UNSAFE_PICKLE = {"load", "loads", "Unpickler", "dump", "dumps", "Pickler"}


# --- source scans -----------------------------------------------------------------------------------------------


def dotted(node: ast.AST) -> str:
    """`a.b.c` for an attribute chain on a name, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return ""


def keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unsafe_uses(source: str, where: str) -> list[str]:
    """Every unsafe deserialisation in `source`: YAML loaders, pickle, torch.load without weights_only=True,
    numpy.load without allow_pickle=False. Aliased imports (`import yaml as y`, `from yaml import load`) count."""
    tree = ast.parse(source)
    aliases = {"yaml": "yaml", "pickle": "pickle", "torch": "torch", "np": "numpy", "numpy": "numpy"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in ("yaml", "pickle", "torch", "numpy", "dill", "marshal", "shelve", "cloudpickle"):
                    aliases[a.asname or a.name] = a.name
                    if a.name in ("dill", "marshal", "shelve", "cloudpickle"):
                        found.append(f"{where}:{node.lineno}: import {a.name}")
        if isinstance(node, ast.ImportFrom) and node.module in ("yaml", "pickle"):
            bad = UNSAFE_YAML if node.module == "yaml" else UNSAFE_PICKLE
            found += [f"{where}:{node.lineno}: from {node.module} import {a.name}" for a in node.names if a.name in bad]
    for node in ast.walk(tree):
        name = dotted(node) if isinstance(node, ast.Attribute) else ""
        head, _, attr = name.partition(".")
        module = aliases.get(head)
        if module == "yaml" and attr in UNSAFE_YAML:
            found.append(f"{where}:{node.lineno}: yaml.{attr}")
        if module == "pickle" and attr in UNSAFE_PICKLE:
            found.append(f"{where}:{node.lineno}: pickle.{attr}")
        if isinstance(node, ast.Call):
            call = aliases.get(dotted(node.func).partition(".")[0], "") + "." + dotted(node.func).partition(".")[2]
            if call == "torch.load" and not keyword_is(node, "weights_only", True):
                found.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if call == "numpy.load" and not keyword_is(node, "allow_pickle", False):
                found.append(f"{where}:{node.lineno}: numpy.load without allow_pickle=False")
    return found


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted(PACKAGE.rglob("*.py"))}


def test_source_scan_finds_no_unsafe_deserialisation(record_property):
    """Source scan of nas/: YAML only by safe_load, torch.load only with weights_only=True, no pickle."""
    sources = package_sources()
    found = [hit for where, text in sources.items() for hit in unsafe_uses(text, where)]
    assert not found, "\n".join(found)
    loads = [w for w, t in sources.items() for n in ast.walk(ast.parse(t)) if isinstance(n, ast.Call)
             and dotted(n.func) == "torch.load"]  # fmt: skip
    assert "nas/transfer/weights.py" in loads, "the scan no longer sees the weights loader: is it still torch.load?"
    assert any("yaml.safe_load" in t for t in sources.values())
    record_property("tried", len(sources))


@pytest.mark.parametrize(
    "snippet",
    [
        "import yaml\nyaml.load(text, Loader=yaml.FullLoader)",
        "import yaml as y\ny.unsafe_load(text)",
        "from yaml import load\n",
        "import yaml\nyaml.full_load(text)",
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "import torch as t\nt.load(path, map_location='cpu')",
        "import pickle\npickle.loads(blob)",
        "import numpy as np\nnp.load(path)",
        "import dill\n",
    ],
)
def test_the_scan_would_catch_an_unsafe_call(snippet):
    """The scanner itself, on unsafe snippets (a scan that finds nothing because it looks nowhere is no check)."""
    assert unsafe_uses(snippet, "snippet")


def test_the_scan_passes_safe_calls():
    """The scanner on the safe forms: safe_load, weights_only=True, allow_pickle=False (no false alarm)."""
    safe = "import yaml, torch, numpy as np\nyaml.safe_load(t)\ntorch.load(p, weights_only=True)\n"
    assert unsafe_uses(safe + "np.load(p, allow_pickle=False)\n", "snippet") == []


# --- behaviour: YAML --------------------------------------------------------------------------------------------


def test_python_yaml_tags_are_refused_and_never_run(tmp_path, record_property):
    """`!!python/` tags given to the YAML reader every command uses."""
    marker = tmp_path / "EXECUTED"
    documents = [
        f"a: !!python/object/apply:builtins.open ['{marker}', 'w']\n",
        f"a: !!python/object/apply:os.system ['touch {marker}']\n",
        f"a: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "a: !!python/name:os.system\n",
        "a: !!python/module:os\n",
    ]
    for i, text in enumerate(documents):
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(text)
        with pytest.raises(UserError, match="not valid YAML"):
            load_yaml_mapping(path)
    assert not marker.exists()
    control = subprocess.run(  # the payload is real: the unsafe loader runs it
        [sys.executable, "-c", f"import yaml; yaml.unsafe_load(open({str(tmp_path / 'doc0.yaml')!r}))"],
        capture_output=True,
        timeout=60,
    )
    assert control.returncode == 0 and marker.exists(), control.stderr
    record_property("tried", len(documents))


# --- behaviour: weights -----------------------------------------------------------------------------------------


class Payload:
    """Unpickling this calls `open(marker, 'w')`: it creates the marker file if anyone runs it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Weights files that run the payload when loaded without weights_only: torch zips and a raw pickle."""
    files = {}
    files["state_dict with a payload"] = folder / "payload_state.pth"
    torch.save({"conv1.weight": torch.zeros(1), "evil": Payload(marker)}, files["state_dict with a payload"])
    files["checkpoint with a payload"] = folder / "payload_checkpoint.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload(marker)}, files["checkpoint with a payload"])
    files["bare payload"] = folder / "payload_bare.pt"
    torch.save(Payload(marker), files["bare payload"])
    files["legacy raw pickle"] = folder / "payload_raw.pkl"
    files["legacy raw pickle"].write_bytes(pickle.dumps(Payload(marker), protocol=2))
    files["legacy torch format"] = folder / "payload_legacy.pth"
    torch.save({"w": Payload(marker)}, files["legacy torch format"], _use_new_zipfile_serialization=False)
    return files


def test_weights_with_a_pickle_payload_are_refused_and_never_run(tmp_path, record_property):
    """Weights files carrying a `__reduce__` payload, given to the weights loader and to `nas baseline`."""
    marker = tmp_path / "EXECUTED"
    files = payload_files(tmp_path, marker)
    for name, path in files.items():
        with pytest.raises(UserError, match="baseline.weights"):
            read_state_dict(path)
        assert not marker.exists(), f"{name}: the payload ran in the loader"

        baseline = {"model": "resnet50", "weights": str(path), "pretrained": True, "device": "cpu"}
        config = {"name": "payload", "dataset": {"name": "digits"}, "fitness": {"device": "cpu"}, "baseline": baseline}
        cfg = tmp_path / f"{path.stem}.yaml"
        cfg.write_text(yaml.safe_dump(config))
        out = cli("baseline", str(cfg), "--run-dir", str(tmp_path / "baseline"), "--epochs", "1")
        assert out.exception is None, repr(out.exception)
        lines = out.error_lines()
        assert out.code == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert "baseline.weights" in lines[0] and path.name in lines[0], lines[0]
        assert not marker.exists(), f"{name}: the payload ran in nas baseline"
        assert not (tmp_path / "baseline").exists()

    # The real process, once: exit 2, one line, and still nothing ran.
    real = run_nas("baseline", str(tmp_path / "payload_state.yaml"), "--run-dir", str(tmp_path / "baseline"))
    lines = [line for line in real.stderr.splitlines() if line.strip()]
    assert real.returncode == 2 and len(lines) == 1 and "Traceback" not in real.stderr, real.stderr[-2000:]
    assert not marker.exists()

    # Control: the same file loaded without weights_only does run the payload, so the refusal above is real.
    code = f"import torch; torch.load({str(files['state_dict with a payload'])!r}, weights_only=False)"
    control = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert control.returncode == 0 and marker.exists(), control.stderr[-2000:]
    record_property("tried", len(files))


# --- behaviour: no pickle in a run directory --------------------------------------------------------------------

PICKLE_PROTOCOLS = {2, 3, 4, 5}


def is_pickle_header(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS


def test_run_directory_holds_no_pickle(tmp_path, record_property):
    """A smoke search, an export, a retrain saved into the run and a report; then every file of the run
    directory is read: no pickle header, no .pkl/.pickle, and every .pt a torch zip of tensors only."""
    cfg = synthetic_config(tmp_path, evaluations=12)
    run = tmp_path / "run"
    assert cli("search", str(cfg), "--run-dir", str(run), "--workers", "0").code == 0
    assert cli("export", str(run)).code == 0
    arch = run / "export" / "architecture.yaml"
    digits = tmp_path / "digits.yaml"
    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["fitness"].update({"epochs": 1, "device": "cpu"})
    data["dataset"]["train_subset"] = 0.1  # a few batches: the weights file is what is checked, not accuracy
    digits.write_text(yaml.safe_dump(data))
    trained = cli("train", str(arch), "--config", str(digits), "--full", "--save", str(run / "retrained"))
    assert trained.code == 0 and trained.exception is None, (trained.stderr[-2000:], trained.exception)
    assert cli("report", str(run)).code == 0

    files = [p for p in run.rglob("*") if p.is_file()]
    assert (run / "retrained" / "weights.pt") in files and (run / "retrained" / "model.pt2") in files
    checked_pt = 0
    for path in files:
        assert path.suffix not in (".pkl", ".pickle"), path
        with path.open("rb") as handle:
            head = handle.read(2)
        assert not is_pickle_header(head), f"{path} is a pickle"
        if path.suffix == ".pt":
            assert zipfile.is_zipfile(path), f"{path} is not a torch zip"
            state = torch.load(path, map_location="cpu", weights_only=True)
            assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()), path
            checked_pt += 1
        if path.suffix == ".ts":
            assert zipfile.is_zipfile(path), f"{path} is not a TorchScript zip"
            torch.jit.load(str(path), map_location="cpu")
    assert checked_pt == 1
    assert is_pickle_header(pickle.dumps({"a": 1}, protocol=4))  # the detector sees a pickle
    record_property("tried", len(files))


def test_run_directory_with_rungs_holds_no_pickle(tmp_path, record_property):
    """A real-training search under `search.fidelity` cut by --max-evaluations in its first batch keeps the rung
    states of that batch under RUN_DIR/rungs/ (weights, optimizer, RNGs) for the resume: none is a pickle, each
    is safetensors that loads without unpickling anything, and nothing else in the run is a pickle either."""
    from safetensors import safe_open

    data = yaml.safe_load((ROOT / "search_configs/digits_quick.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    data["fitness"].update({"epochs": 2, "device": "cpu"})
    data["dataset"]["train_subset"] = 0.1
    data["search"].update({"fidelity": {"min_epochs": 1, "eta": 2}, "pso": {"swarm_size": 2}})
    cfg = tmp_path / "digits_rungs.yaml"
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    out = cli("search", str(cfg), "--run-dir", str(run), "--workers", "0", "--max-evaluations", "2")
    assert out.code == 0 and out.exception is None, (out.stderr[-2000:], out.exception)
    states = sorted((run / "rungs").glob("*.safetensors"))
    assert len(states) == 2, "the cut batch's first-rung states wait for the resume"
    files = [p for p in run.rglob("*") if p.is_file()]
    for path in files:
        assert path.suffix not in (".pkl", ".pickle", ".pt"), path
        with path.open("rb") as handle:
            assert not is_pickle_header(handle.read(2)), f"{path} is a pickle"
    for path in states:
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            assert f.metadata()["nas"].startswith("{")
        assert {"rng.batch", "rng.torch", "rng.numpy"} <= names and any(n.startswith("optim.") for n in names)
    record_property("tried", len(files))


# --- behaviour: the embedded Ray --------------------------------------------------------------------------------

# A fresh process starts the embedded Ray the way `nas search` does, then lists every TCP port the Ray processes
# listen on (this process and its children) and, for each port, calls a method of each Ray gRPC service without
# the token and with it; HTTP ports get a GET without the token.
RAY_PROBE = textwrap.dedent(
    """
    import json, time, urllib.error, urllib.request
    import grpc, ray
    import psutil  # Ray's bundled copy, importable once ray is
    from ray._raylet import AuthenticationTokenLoader
    from nas.config import RayConfig, ResourcesConfig
    from nas.evaluate.ray_cluster import auth_mode, connect

    connection = connect(RayConfig(), ResourcesConfig(), workers=1)
    ray.get(ray.remote(lambda: 1).remote())  # a worker is up
    time.sleep(2)
    token = AuthenticationTokenLoader.instance().get_raw_token()
    me = psutil.Process()
    listening = set()
    for process in [me, *me.children(recursive=True)]:
        try:
            for c in process.net_connections("inet"):
                if c.status == psutil.CONN_LISTEN:
                    listening.add((process.name(), c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    METHODS = ["/ray.rpc.NodeInfoGcsService/GetAllNodeInfo", "/ray.rpc.NodeManagerService/GetNodeStats",
               "/ray.rpc.CoreWorkerService/NumPendingTasks"]

    def grpc_codes(port, metadata):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            codes = []
            for method in METHODS:
                try:
                    channel.unary_unary(method)(b"", timeout=3, metadata=metadata)
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
            return codes

    def http_status(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
                return response.status, response.read(300).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except Exception as exc:
            return type(exc).__name__, ""

    ports = []
    for name, ip, port in sorted(listening):
        ports.append({"process": name, "ip": ip, "port": port, "anonymous": grpc_codes(port, ()),
                      "token": grpc_codes(port, (("authorization", f"Bearer {token}"),)), "http": http_status(port)[0],
                      "body": http_status(port)[1]})
    report = {"auth": auth_mode(), "ports": ports}
    connection.close()
    print(json.dumps(report))
    """
)

LOOPBACK = {"127.0.0.1", "::1"}
_ray_report: dict = {}


def ray_report() -> dict:
    """The probe's report, made once per session (starting Ray costs seconds)."""
    if not _ray_report:
        out = subprocess.run([sys.executable, "-c", RAY_PROBE], capture_output=True, text=True, timeout=240,
                             env=environ_without_ray(), cwd=ROOT)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        _ray_report.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return _ray_report


def test_embedded_ray_refuses_grpc_calls_without_the_token(record_property):
    """Every gRPC port of the embedded Ray (GCS, raylet, workers, agents), called without the token and with it."""
    report = ray_report()
    assert report["auth"] == "on"
    grpc_ports = [p for p in report["ports"] if "OK" in p["token"] or "UNAUTHENTICATED" in p["anonymous"]]
    services = {p["process"] for p in grpc_ports}
    assert {"gcs_server", "raylet"} <= services, report["ports"]
    for p in report["ports"]:
        assert "OK" not in p["anonymous"], f"{p['process']} port {p['port']} answers without the token: {p}"
    for p in grpc_ports:  # the token is what lets a call through: refused without it, answered with it
        assert "UNAUTHENTICATED" in p["anonymous"] and "OK" in p["token"], p
    record_property("tried", len(report["ports"]))


KNOWN_GAP = (
    "Ray 2.60 binds its gRPC servers to all interfaces (token-protected, see the test above) and serves its "
    "Prometheus metrics (autoscaler, dashboard, agent) on 0.0.0.0 without the token; it has no option to bind them "
    "to loopback"
)


def test_embedded_ray_listens_on_loopback_only(record_property):
    """Every TCP port the embedded Ray's processes listen on, checked to be bound to loopback."""
    report = ray_report()
    record_property("tried", len(report["ports"]))
    open_ports = [f"{p['process']} {p['ip']}:{p['port']}" for p in report["ports"] if p["ip"] not in LOOPBACK]
    assert report["ports"], "the probe saw no listening port at all"
    if open_ports:  # xfail only once the probe has run: a broken probe is a failure, not the known gap
        pytest.xfail(f"{KNOWN_GAP}: {', '.join(open_ports)}")


def test_embedded_ray_http_endpoints_beyond_loopback(record_property):
    """HTTP endpoints of the embedded Ray reachable beyond loopback: only the read-only Prometheus metrics pages
    answer without the token; every other one refuses (401/403) or is not HTTP."""
    report = ray_report()
    open_http = [p for p in report["ports"] if p["ip"] not in LOOPBACK and p["http"] == 200]
    for p in open_http:  # Prometheus text format: '# HELP name ...' / '# TYPE name ...' lines
        assert p["body"].startswith("# "), f"{p['process']} port {p['port']} serves {p['body'][:200]!r}"
    for p in report["ports"]:
        if p["ip"] not in LOOPBACK and isinstance(p["http"], int) and p["http"] != 200:
            assert p["http"] in (401, 403, 404), p
    record_property("tried", len(report["ports"]))
