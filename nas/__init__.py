"""evonas: evolutionary neural architecture search (hybrid GA-PSO over architectures and shortcuts).

The Python API: `nas.search`, `nas.resume` and `nas.Run` (`nas.api`), and for trained models `nas.load_model`
and `nas.predict` (`nas.predict.api`). Each is imported on first use, so `import nas` costs what the strategies'
registration costs and no more (the model functions import torch).
"""

import importlib
import types
from typing import Any

from nas.version import __version__

__all__ = ["Run", "__version__", "load_model", "predict", "resume", "search"]

# Every strategy declares its name and config section as its package is imported; importing it here, with the
# package, means no config is ever read before that (`nas.config.STRATEGY_NAMES`).
import nas.strategies  # noqa: E402, F401

# name -> the module that defines it, imported when the name is first used
LAZY = {"Run": "nas.api", "search": "nas.api", "resume": "nas.api", "load_model": "nas.predict.api"}


class CallablePackage(types.ModuleType):
    """The package `nas.predict`, callable as the function `nas.predict.api.predict`.

    `nas.predict` names both the subpackage and the API function: the import system binds the subpackage to the
    attribute `nas.predict` whenever it is first imported, so a function of that name would be replaced by it.
    The subpackage itself is therefore made callable: `nas.predict(model_dir, images)` predicts, and
    `nas.predict.command` and every other import of the subpackage work as before."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from nas.predict.api import predict as predict_images

        return predict_images(*args, **kwargs)


import nas.predict  # noqa: E402  (its __init__ imports nothing: cheap)

nas.predict.__class__ = CallablePackage


def __getattr__(name: str) -> Any:
    """The API names of `LAZY`, imported from their module on first use."""
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))
