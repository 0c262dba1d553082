"""The search strategies: pure ask/tell state machines over genomes and fitness numbers (no torch, no Ray, no
files). Importing the package registers every strategy module in it, so adding a strategy is one new file here
plus its name in the list below; the run machinery (`nas.run`) looks strategies up by name in `STRATEGIES`."""

from nas.strategies import ga, hgapso, pso, random_search, regularized_evolution  # noqa: F401  (registration)
from nas.strategies.strategy import STRATEGIES, Strategy, build_strategy

__all__ = ["STRATEGIES", "Strategy", "build_strategy"]
