"""docker/slurm, docker/kuberay and docker/runtime_env.yaml: no SLURM, Kubernetes or network here, so the batch
script is run under stand-ins for `srun`, `scontrol`, `ray` and `nas` that record what they are asked (and act
out a head that comes up), the KubeRay resources are checked for the fields their kinds require and against the
image and paths of docker/Dockerfile, and the runtime_env example against pyproject.toml and Ray's validation."""

import os
import re
import shlex
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from nas.config import load_config
from nas.evaluate.runtime_env import check_runtime_env

tomllib = pytest.importorskip("tomllib")

DOCKER = ROOT / "docker"
SBATCH = DOCKER / "slurm" / "evonas.sbatch"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NODES = ["gpu-a01", "gpu-a02", "gpu-a03"]
HEAD_IP = "10.1.2.3"

# Stand-ins, each appending its arguments to $SHIM_LOG. `srun` drops its own options and runs the command on
# "the node" (here); `ray status` answers once the head's `ray start --head` has been logged, as a real head does
# once started; `nas` waits for SIGTERM when SHIM_NAS_WAIT is set, and exits 143 on it.
SHIMS = {
    "scontrol": f"""echo "scontrol $*" >> "$SHIM_LOG"; printf '%s\\n' {" ".join(NODES)}""",
    "srun": """echo "srun $*" >> "$SHIM_LOG"
        while [[ "$1" == -* ]]; do if [[ "$1" == -w ]]; then shift; fi; shift; done
        exec "$@" """,
    "hostname": f"""echo "{HEAD_IP} fe80::1" """,
    "ray": """echo "ray $*" >> "$SHIM_LOG"
        if [[ "$1" == status ]]; then
            for _ in $(seq 50); do grep -q "^ray start --head" "$SHIM_LOG" && exit 0; sleep 0.05; done; exit 1
        fi""",
    "nas": """echo "nas $*" >> "$SHIM_LOG"
        if [[ -n "${SHIM_NAS_WAIT:-}" ]]; then
            trap 'echo "nas got TERM" >> "$SHIM_LOG"; exit 143' TERM
            touch "$SHIM_NAS_WAIT"; for _ in $(seq 600); do sleep 0.05; done
        fi""",
}


def shim_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in SHIMS.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + textwrap.dedent(body) + "\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def sbatch_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What SLURM gives the batch script of `--nodes=3 --gpus-per-node=4 --cpus-per-task=32`, and a token file."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    (home / ".ray" / "auth_token").write_text("t" * 32)
    env = {
        "PATH": f"{shim_dir(tmp_path)}:/usr/bin:/bin",
        "HOME": str(home),
        "SHIM_LOG": str(tmp_path / "calls.log"),
        "SLURM_JOB_NODELIST": "gpu-a[01-03]",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_CPUS_PER_TASK": "32",
        "RUN_DIR": str(tmp_path / "runs" / "cifar10"),
        "CONFIG": "search_configs/cifar10_hgapso.yaml",
    }
    return {**env, **extra}


def run_sbatch(env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    out = subprocess.run(["bash", str(SBATCH)], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    log = Path(env["SHIM_LOG"])
    return out, log.read_text().splitlines() if log.exists() else []


def ray_starts(calls: list[str]) -> dict[str, str]:
    """node -> the `srun ... -w NODE ray start ...` line that started Ray there."""
    starts = {}
    for line in calls:
        words = line.split()
        if words[0] == "srun" and "ray" in words:
            starts[words[words.index("-w") + 1]] = line
    return starts


def test_the_batch_script_is_valid_bash_and_asks_slurm_for_gpus_and_an_early_sigterm():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    directives = [line.split(None, 1)[1] for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH ")]
    assert any(d.startswith("--gpus-per-node=") for d in directives)
    assert any(re.fullmatch(r"--signal=B:TERM@\d+", d) for d in directives)
    assert "nas resume" in SBATCH.read_text() and "nas search" in SBATCH.read_text()


def test_head_on_the_first_node_workers_on_the_others_and_the_search_on_the_head_address(tmp_path):
    out, calls = run_sbatch(sbatch_env(tmp_path))
    assert out.returncode == 0, out.stderr
    starts = ray_starts(calls)
    assert sorted(starts) == NODES
    head, workers = starts[NODES[0]], [starts[n] for n in NODES[1:]]
    assert "ray start --head" in head and f"--node-ip-address={HEAD_IP}" in head and "--port=6379" in head
    assert "--num-gpus=4" in head and "--num-cpus=31" in head and "--dashboard-host=127.0.0.1" in head
    for worker in workers:
        assert f"--address={HEAD_IP}:6379" in worker and "--head" not in worker
        assert "--num-gpus=4" in worker and "--num-cpus=32" in worker
    for line in starts.values():  # each step asks SLURM for the node's GPUs and CPUs
        assert "--gres=gpu:4" in line and "--cpus-per-task=32" in line and "--block" in line
    assert calls.index(head) < min(calls.index(w) for w in workers), "workers joined before the head answered"
    driver = [line for line in calls if line.startswith("nas ")]
    assert driver == [f"nas search search_configs/cifar10_hgapso.yaml --run-dir {tmp_path}/runs/cifar10 "
                      f"--ray-address {HEAD_IP}:6379"]  # fmt: skip


def test_a_run_directory_that_holds_a_run_is_resumed_on_the_new_head_and_port(tmp_path):
    env = sbatch_env(tmp_path, RAY_PORT="6400", SLURM_GPUS_PER_NODE="a100:2")
    del env["SLURM_GPUS_ON_NODE"]
    Path(env["RUN_DIR"]).mkdir(parents=True)
    (Path(env["RUN_DIR"]) / "config.yaml").write_text("name: x\n")
    out, calls = run_sbatch(env)
    assert out.returncode == 0, out.stderr
    starts = ray_starts(calls)
    assert "--port=6400" in starts[NODES[0]] and all(f"--address={HEAD_IP}:6400" in starts[n] for n in NODES[1:])
    assert all("--num-gpus=2" in line and "--gres=gpu:2" in line for line in starts.values())
    assert [line for line in calls if line.startswith("nas ")] == [
        f"nas resume {env['RUN_DIR']} --ray-address {HEAD_IP}:6400"
    ]


def test_a_cpu_allocation_asks_no_gpus(tmp_path):
    env = sbatch_env(tmp_path)
    del env["SLURM_GPUS_ON_NODE"]
    out, calls = run_sbatch(env)
    assert out.returncode == 0, out.stderr
    assert all("--num-gpus=0" in line and "--gres" not in line for line in ray_starts(calls).values())


def test_without_the_token_nothing_starts(tmp_path):
    env = sbatch_env(tmp_path)
    (Path(env["HOME"]) / ".ray" / "auth_token").unlink()
    out, calls = run_sbatch(env)
    assert out.returncode == 2 and "ray get-auth-token --generate" in out.stderr
    assert not [line for line in calls if line.startswith(("srun", "nas"))]


def test_sigterm_before_the_time_limit_reaches_the_driver_and_its_exit_code_is_the_jobs(tmp_path):
    env = sbatch_env(tmp_path, SHIM_NAS_WAIT=str(tmp_path / "driver-running"))
    proc = subprocess.Popen(["bash", str(SBATCH)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (tmp_path / "driver-running").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what `--signal=B:TERM@300` sends the batch shell
    assert proc.wait(timeout=30) == 143
    assert "nas got TERM" in Path(env["SHIM_LOG"]).read_text()


# --- KubeRay ----------------------------------------------------------------------------------------------------


def kuberay(name: str) -> list[dict]:
    return list(yaml.safe_load_all((DOCKER / "kuberay" / name).read_text()))


def of_kind(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def documented_image() -> str:
    """The tag docker/Dockerfile's header builds."""
    (tag,) = re.findall(r"docker build -f docker/Dockerfile -t (\S+) \.", (DOCKER / "Dockerfile").read_text())
    return tag


def ray_containers(cluster: dict) -> list[dict]:
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    return [c for group in groups for c in group["template"]["spec"]["containers"]]


def test_raycluster_has_the_fields_its_kind_requires():
    cluster = of_kind(kuberay("raycluster.yaml"), "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["metadata"]["name"]
    spec = cluster["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert len(groups) >= 2
    for group in groups:
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams are strings"
        assert group["template"]["spec"]["containers"]
    for worker in spec["workerGroupSpecs"]:
        assert worker["groupName"] and 0 <= worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    for container in ray_containers(cluster):
        assert container["name"] and container["image"]
        assert container["resources"]["limits"]["cpu"] and container["resources"]["limits"]["memory"]
    assert spec["authOptions"] == {"mode": "token"}


def test_every_pod_runs_the_image_the_dockerfile_documents():
    cluster = of_kind(kuberay("raycluster.yaml"), "RayCluster")
    assert {c["image"] for c in ray_containers(cluster)} == {documented_image()}
    assert documented_image().endswith(f":{PYPROJECT['project']['version']}")


def test_the_head_runs_no_candidate_and_the_workers_ask_for_gpus():
    spec = of_kind(kuberay("raycluster.yaml"), "RayCluster")["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for worker in spec["workerGroupSpecs"]:
        (container,) = worker["template"]["spec"]["containers"]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert container["resources"]["requests"] == container["resources"]["limits"]
    assert spec["enableInTreeAutoscaling"] is True


def test_ray_version_is_one_pyproject_allows_with_token_authentication():
    version = of_kind(kuberay("raycluster.yaml"), "RayCluster")["spec"]["rayVersion"]
    (ray_requirement,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray")]
    assert Version(version) in SpecifierSet(ray_requirement.split("]", 1)[1])
    assert Version(version) >= Version("2.52"), "authOptions token mode"


def test_the_run_directory_claim_is_mounted_on_the_head_where_the_job_writes():
    docs = kuberay("raycluster.yaml")
    claim = of_kind(docs, "PersistentVolumeClaim")
    head = of_kind(docs, "RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]
    (volume,) = [v for v in head["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (container,) = head["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"] if m["name"] == volume["name"]}
    script = entrypoint_script()
    run_dirs = set(re.findall(r"--run-dir (\S+)", script)) | set(re.findall(r"nas resume (\S+)", script))
    assert len(run_dirs) == 1
    assert any(run_dirs.pop().startswith(path + "/") and "subPath" not in m for path, m in mounts.items())
    # The datasets at the place the shipped configs read them (../data beside search_configs/ in the image).
    assert mounts["/opt/evonas-src/data"]["subPath"] == "data"


def entrypoint_script() -> str:
    job = of_kind(kuberay("search-job.yaml"), "RayJob")
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["bash", "-c"] and len(words) == 3
    return words[2]


def test_rayjob_runs_the_search_on_the_raycluster():
    job = of_kind(kuberay("search-job.yaml"), "RayJob")
    cluster = of_kind(kuberay("raycluster.yaml"), "RayCluster")
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["name"]
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert "rayClusterSpec" not in job["spec"] and not job["spec"].get("shutdownAfterJobFinishes")
    script = entrypoint_script()
    subprocess.run(["bash", "-n", "-c", script], check=True)
    (config,) = re.findall(r"nas search (\S+)", script)
    workdir = next(line.split()[1] for line in (DOCKER / "Dockerfile").read_text().splitlines()
                   if line.startswith("WORKDIR "))  # fmt: skip
    assert (ROOT / Path(config).relative_to(workdir)).is_file(), "the image copies search_configs/ to its WORKDIR"
    assert script.count("--ray-address auto") == 2


@pytest.mark.parametrize("existing", [False, True])
def test_the_job_entrypoint_searches_a_new_run_and_resumes_an_existing_one(tmp_path, existing):
    script = entrypoint_script()
    (run_dir,) = set(re.findall(r"--run-dir (\S+)", script))
    here = tmp_path / "run"
    if existing:
        here.mkdir()
        (here / "config.yaml").write_text("name: x\n")
    env = {"PATH": f"{shim_dir(tmp_path)}:/usr/bin:/bin", "SHIM_LOG": str(tmp_path / "calls.log")}
    subprocess.run(["bash", "-c", script.replace(run_dir, str(here))], env=env, check=True, timeout=30)
    (call,) = (tmp_path / "calls.log").read_text().splitlines()
    if existing:
        assert call == f"nas resume {here} --ray-address auto"
    else:
        assert call.startswith("nas search ") and call.endswith(f"--run-dir {here} --ray-address auto")


# --- the runtime_env example --------------------------------------------------------------------------------------


def test_runtime_env_example_ships_this_checkouts_package_and_pyprojects_dependencies():
    config = load_config(DOCKER / "runtime_env.yaml")
    env = config.ray.runtime_env
    assert env["py_modules"] == [str(ROOT / "nas")]
    assert env["pip"] == [d for d in PYPROJECT["project"]["dependencies"] if not d.startswith("ray")]
    assert check_runtime_env(env) == env
    assert config.resources.gpus_per_trial == 0, "the example runs on any cluster, GPUs or not"


def test_runtime_env_example_names_the_command_that_runs_it():
    text = (DOCKER / "runtime_env.yaml").read_text()
    assert "nas search docker/runtime_env.yaml --ray-address" in text
    assert os.path.relpath(ROOT / "nas", DOCKER) in yaml.safe_load(text)["ray"]["runtime_env"]["py_modules"]


# --- README -------------------------------------------------------------------------------------------------------


def cluster_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Running on a GPU cluster", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(
    "needle",
    [
        "### SLURM",
        "docker/slurm/evonas.sbatch",
        "ray get-auth-token --generate",
        "--dependency=afterany:",
        "### Kubernetes (KubeRay)",
        "kubectl apply -f docker/kuberay/raycluster.yaml",
        "kubectl apply -f docker/kuberay/search-job.yaml",
        "nas resume /mnt/evonas/runs/cifar10 --ray-address auto",
        "### Workers without evonas installed (runtime_env)",
        "nas search docker/runtime_env.yaml --ray-address HEAD_IP:6379",
    ],
)
def test_readme_gives_the_commands_of_each_launcher(needle):
    assert needle in cluster_section()


def test_readme_paths_of_the_kuberay_section_are_the_yamls_paths():
    section = cluster_section()
    assert "/mnt/evonas/runs/cifar10" in entrypoint_script()
    claim = of_kind(kuberay("raycluster.yaml"), "PersistentVolumeClaim")["metadata"]["name"]
    job = of_kind(kuberay("search-job.yaml"), "RayJob")["metadata"]["name"]
    cluster = of_kind(kuberay("raycluster.yaml"), "RayCluster")["metadata"]["name"]
    assert f"`{claim}`" in section and f"job/{job}" in section and f"ray.io/cluster={cluster}" in section
