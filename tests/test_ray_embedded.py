"""Connecting to Ray: the embedded Ray's dashboard on loopback behind the token, and bad addresses or impossible
resource requests as one-line errors (exit 2 through the real CLI)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from conftest import ROOT, run_nas

from nas.config import ResourcesConfig
from nas.errors import UserError
from nas.evaluate.ray_cluster import check_address, check_feasible

# Run in a fresh process: the embedded Ray with its dashboard, then what listens where and who may ask it.
PROBE = textwrap.dedent(
    """
    import json, urllib.error, urllib.request
    import ray, psutil
    from nas.config import RayConfig, ResourcesConfig
    from nas.evaluate.ray_cluster import connect
    from ray._raylet import AuthenticationTokenLoader

    connection = connect(RayConfig(dashboard=True), ResourcesConfig(), workers=1)
    url = connection.dashboard_url
    port = int(url.rsplit(":", 1)[1])
    hosts = sorted({c.laddr.ip for c in psutil.net_connections("inet")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == port})

    def status(headers):
        try:
            return urllib.request.urlopen(urllib.request.Request(url + "/api/version", headers=headers)).status
        except urllib.error.HTTPError as exc:
            return exc.code

    token = AuthenticationTokenLoader.instance().get_raw_token()
    report = {"url": url, "hosts": hosts, "anonymous": status({}), "wrong": status({"Authorization": "Bearer x"}),
              "token": status({"Authorization": f"Bearer {token}"})}
    connection.close()
    report["after_close"] = ray.is_initialized()
    print(json.dumps(report))
    """
)


def test_embedded_dashboard_listens_on_loopback_only_and_wants_the_token():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["url"].startswith("http://127.0.0.1:")
    assert report["hosts"] == ["127.0.0.1"]
    assert report["anonymous"] == 401 and report["wrong"] == 403 and report["token"] == 200
    assert report["after_close"] is False


@pytest.mark.parametrize(
    "address,message",
    [("nope", "expected 'auto', 'ray://host:port' or 'host:port'"), ("127.0.0.1:1", "cannot reach the Ray cluster")],
)
def test_bad_ray_address_is_one_line_and_exit_2(tmp_path, address, message):
    data = yaml.safe_load((ROOT / "search_configs/smoke.yaml").read_text())
    data["encoding"] = str(ROOT / "encodings/densenet_small.yaml")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(data))
    out = run_nas("search", str(tmp_path / "cfg.yaml"), "--run-dir", str(tmp_path / "run"), "--ray-address", address)
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "ray.address" in errors[0] and message in errors[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("address", ["auto", "ray://head.example.org:10001", "10.0.0.5:6379", "[fd00::1]:6379"])
def test_address_forms_ray_accepts(address):
    assert check_address(f" {address} ") == address


@pytest.mark.parametrize("address", ["", "head", "http://head:8265", "ray://head", "10.0.0.5:port", "head:65536"])
def test_address_forms_refused(address):
    with pytest.raises(UserError, match="ray.address"):
        check_address(address)


def test_a_trial_larger_than_the_local_ray_is_refused_with_its_key():
    with pytest.raises(UserError, match=r"resources.gpus_per_trial: asks 0.5 GPU .* has 0"):
        check_feasible(ResourcesConfig(gpus_per_trial=0.5), {"CPU": 2.0})
    with pytest.raises(UserError, match=r"resources.cpus_per_trial: asks 4 CPUs"):
        check_feasible(ResourcesConfig(cpus_per_trial=4), {"CPU": 2.0, "GPU": 1.0})
    check_feasible(ResourcesConfig(gpus_per_trial=0.25, cpus_per_trial=2), {"CPU": 2.0, "GPU": 1.0})


# Run in a fresh process: the embedded Ray's start, with Ray's "timed out during startup" (its fixed 30 s wait for
# the raylet, which a loaded machine has overrun) raised the first FAILS times, where Ray raises it.
FLAKY_START = textwrap.dedent(
    """
    import json, sys
    import ray, psutil
    import ray._private.services as services
    from nas.config import RayConfig, ResourcesConfig
    from nas.errors import UserError
    from nas.evaluate.ray_cluster import connect

    fails, get_node = int(sys.argv[1]), services.get_node

    def slow_raylet(*args, **kwargs):
        global fails
        if fails > 0:
            fails -= 1
            raise Exception("The current node timed out during startup. This could happen because ...")
        return get_node(*args, **kwargs)

    def raylets():
        return sum(p.name() == "raylet" for p in psutil.Process().children(recursive=True))

    services.get_node = slow_raylet
    try:
        connection = connect(RayConfig(), ResourcesConfig(), workers=1)
    except UserError as exc:
        report = {"error": str(exc)}
    else:
        report = {"answer": ray.get(ray.remote(lambda: 7).remote()), "CPU": ray.cluster_resources()["CPU"]}
    report["raylets"] = raylets()
    print(json.dumps(report))
    """
)


def flaky_start(fails: int) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", FLAKY_START, str(fails)], capture_output=True, text=True,
                          timeout=240, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_an_embedded_ray_that_timed_out_starting_is_started_again_without_leftovers():
    report, stderr = flaky_start(2)
    assert report == {"answer": 7, "CPU": 1.0, "raylets": 1}, "one raylet: the two failed starts' were killed"
    assert stderr.count("the embedded Ray timed out starting") == 2


def test_an_embedded_ray_that_never_starts_is_one_line():
    report, _ = flaky_start(3)
    assert report["error"].startswith("the embedded Ray did not start: its raylet did not register within")
    assert "\n" not in report["error"] and report["raylets"] == 0, "nothing of the failed starts is left"
