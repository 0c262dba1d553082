"""One description of the machine for every benchmark's JSON line: CPU model, cores, GPU, torch version."""

import os
import platform
import time


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What a reader needs to compare figures: where, when, on what."""
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        # figures taken while other work shares the cores are slower; the load says how much to trust them
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info
