"""The search strategies: pure ask/tell state machines over genomes and fitness numbers (no torch, no Ray, no
files). Importing the package imports every module in it, and each strategy module registers itself
(`@register`), with its own config section if it has one: adding a strategy is one new file here. The run
machinery (`nas.run`) looks strategies up by name in `STRATEGIES`."""

import importlib
import pkgutil

from nas.strategies.strategy import STRATEGIES, Strategy, build_strategy

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["STRATEGIES", "Strategy", "build_strategy"]
