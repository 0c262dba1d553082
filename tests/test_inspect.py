"""`nas inspect` through the real command line."""

import json

from conftest import ROOT


def test_inspect_architecture_json(nas):
    out = nas("inspect", str(ROOT / "examples/densenet_small.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["params"] == 40166
    assert [b["out_channels"] for b in info["blocks"]] == [16 + 3 * 12, 12]


def test_inspect_space_reports_bit_range(nas):
    out = nas("inspect", str(ROOT / "encodings/densenet_cifar.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bit_length_range"] == [3 * 3, 3 * 78]
