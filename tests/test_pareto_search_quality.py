"""benchmarks/pareto_search_quality.py: a front at a smaller budget is that of the first evaluations, a run is
read back from its cache, and every method (the Optuna peers too) evaluates exactly its budget of genomes."""

import argparse
import json
import sys

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from nas.evaluate.result import Result
from nas.strategies import pareto

sys.path.insert(0, str(ROOT))
pytest.importorskip("optuna")
psq = pytest.importorskip("benchmarks.pareto_search_quality")

LARGEST = 1000.0


def result(i: int, fitness: float, params: int) -> Result:
    return Result(key=f"g{i}", genome={}, status="ok", fitness=fitness, params=params)


points = st.lists(st.tuples(st.floats(0, 1), st.integers(1, int(LARGEST))), min_size=1, max_size=40)


@given(points, st.integers(1, 40))
def test_the_hypervolume_at_a_budget_is_that_of_the_first_evaluations_and_grows_with_it(values, cut):
    results = [result(i, f, p) for i, (f, p) in enumerate(values)]
    figures = psq.hypervolumes(results, [cut, 40], LARGEST)
    prefix = [pareto.objective_vector(r, psq.OBJECTIVES) for r in results[:cut]]
    front = [prefix[i] for i in pareto.pareto_front(prefix)]
    assert figures[str(cut)] == [pareto.normalised_hypervolume(front, [LARGEST]), len(front)]
    assert figures[str(cut)][0] <= figures["40"][0]


def options(tmp_path, cached_only: bool = False) -> argparse.Namespace:
    return argparse.Namespace(instances="tuning", cache=tmp_path, cached_only=cached_only)


@pytest.mark.parametrize("method", ["optuna-nsga2", "hgapso"])
def test_a_run_evaluates_its_budget_and_is_read_back_from_the_cache(tmp_path, method):
    figures = psq.run(method, "costly", 0, 30, [15, 30], options(tmp_path))
    assert figures["evaluations"] == 30
    assert set(figures["hypervolume"]) == {"15", "30"}
    assert 0 < figures["hypervolume"]["15"][0] <= figures["hypervolume"]["30"][0] < 1
    (path,) = tmp_path.glob(f"costly-0-{method}-seed0-budget30.json")
    path.write_text(json.dumps({**figures, "seconds": -1}))
    assert psq.run(method, "costly", 0, 30, [15, 30], options(tmp_path))["seconds"] == -1
    assert psq.run(method, "costly", 1, 30, [15, 30], options(tmp_path, cached_only=True)) is None
