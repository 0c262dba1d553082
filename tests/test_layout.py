"""The layout DESIGN.md fixes: strategies are pure (no torch, no Ray), and the registry is filled on import."""

import subprocess
import sys

PROBE = """
import sys
import nas.strategies
heavy = sorted(m for m in ("torch", "ray", "torchvision") if m in sys.modules)
print(",".join(heavy))
print(",".join(nas.strategies.STRATEGIES.names()))
"""


def test_strategy_package_imports_neither_torch_nor_ray_and_registers_every_strategy():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    heavy, names = out.stdout.splitlines()
    assert heavy == "", f"nas.strategies pulled in {heavy}"
    assert set(names.split(",")) >= {"hgapso", "pso", "ga", "random", "regularized-evolution"}
