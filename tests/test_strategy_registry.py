"""Adding a strategy is one file: a strategy defined here, with its own config section, is validated, saved
and built like the shipped ones; the config's `search.strategy` is checked against the registry."""

from dataclasses import asdict, dataclass
from typing import Any

import pytest
import yaml
from test_strategies import SMALL, results

from nas.config import Config, bounds, load_config, parse_config
from nas.errors import UserError
from nas.genome.genome import Genome
from nas.strategies import STRATEGIES, build_strategy
from nas.strategies.hgapso import HGAPSOConfig
from nas.strategies.random_search import new_random_genomes
from nas.strategies.ranking import Score
from nas.strategies.regularized_evolution import EvolutionConfig
from nas.strategies.shortcut_ga import GAConfig
from nas.strategies.strategy import Strategy, register
from nas.strategies.swarm import PSOConfig


@dataclass
class BurstConfig:
    """`search.burst`: how many random genomes one ask holds."""

    size: int = bounds(2, 1, 50)
    note: str = "none"


@register("burst", config=BurstConfig)
class Burst(Strategy):
    """Random genomes in bursts of `search.burst.size`: the smallest strategy with a section of its own."""

    def propose(self, limit: int | None) -> list[Genome]:
        return new_random_genomes(self, self.config.size if limit is None else min(limit, self.config.size))

    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        self.told_scores = [s for _, s in told]

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, data: dict[str, Any]) -> None:
        pass


def test_a_strategy_from_another_module_is_registered_with_its_section():
    assert "burst" in STRATEGIES.names()
    config = parse_config({"search": {"strategy": "burst", "burst": {"size": 4}}})
    assert config.search.section("burst") == BurstConfig(size=4)
    strategy = build_strategy(config.search, SMALL, 0)
    assert strategy.config.size == 4 and len(strategy.ask()) == 4
    strategy.tell(results(strategy.ask()))
    assert len(strategy.told_scores) == 4


def test_its_section_defaults_when_absent_and_survives_the_saved_config():
    config = parse_config({"search": {"strategy": "burst"}})
    assert build_strategy(config.search, SMALL, 0).config == BurstConfig()
    config = parse_config({"search": {"strategy": "burst", "burst": {"size": 3, "note": "x"}}})
    saved = yaml.safe_load(config.to_yaml())
    assert saved["search"]["burst"] == {"size": 3, "note": "x"} and "extra" not in saved["search"]
    assert parse_config(saved).to_dict() == config.to_dict()


def test_a_plugin_section_not_given_stays_out_of_the_saved_config_which_a_process_without_the_plugin_reads():
    config = parse_config({"search": {"strategy": "hgapso"}})
    saved = yaml.safe_load(config.to_yaml())["search"]
    assert "burst" not in saved and {"pso", "ga", "hgapso", "regularized_evolution"} <= set(saved)
    assert "burst" not in yaml.safe_load(Config().to_yaml())["search"], "nor in a config built in code"
    assert parse_config({"search": {"strategy": "hgapso"}}).search.section("burst") == BurstConfig()


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"strategy": "burst", "burst": {"sise": 3}}, r"^search\.burst\.sise: unknown key \(known: size, note\)"),
        ({"strategy": "burst", "burst": {"size": 0}}, r"^search\.burst\.size: must be >= 1, got 0"),
        ({"strategy": "burst", "burst": {"note": 3}}, r"^search\.burst\.note: must be a string"),
        ({"strategy": "burst", "burst": [1]}, r"^search\.burst: must be a mapping"),
        ({"strategy": "annealing"}, r"^search\.strategy: unknown strategy 'annealing' \(known: .*burst.*hgapso"),
        ({"strategy": 3}, r"^search\.strategy: must be a string"),
        ({"extra": {}}, r"^search\.extra: unknown key \(known: strategy, .*burst"),
        ({"pso": {"swarm": 3}}, r"^search\.pso\.swarm: unknown key"),
    ],
)
def test_bad_sections_and_names_are_one_line_errors_with_the_key_path(search, message):
    with pytest.raises(UserError, match=message):
        parse_config({"search": search})


def test_the_shipped_sections_keep_their_keys():
    config = parse_config(
        {"search": {"strategy": "regularized-evolution", "regularized_evolution": {"population": 9, "sample_size": 2}}}
    )
    strategy = build_strategy(config.search, SMALL, 0)
    assert strategy.config is config.search.section("regularized_evolution") and strategy.config.population == 9
    hgapso = build_strategy(
        parse_config({"search": {"pso": {"swarm_size": 3}, "ga": {"population": 4}}}).search, SMALL, 0
    )
    assert hgapso.pso.swarm_size == 3 and len(hgapso.swarm.particles) == 3 and hgapso.ga.population == 4
    assert hgapso.pso is hgapso.search.section("pso") and hgapso.config is hgapso.search.section("hgapso")


PSO_KEYS = "swarm_size, w, c1, c2, velocity_clamp, stall_iterations"


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"pso": {"v": 1}}, f"search.pso.v: unknown key (known: {PSO_KEYS})"),
        ({"pso": {"w": 2.5}}, "search.pso.w: must be <= 2, got 2.5"),
        ({"pso": {"c1": 0}}, "search.pso.c1: must be > 0, got 0.0"),
        ({"pso": {"swarm_size": "many"}}, "search.pso.swarm_size: must be an integer, not 'many'"),
        ({"ga": {"population": 1}}, "search.ga.population: must be >= 2, got 1"),
        ({"ga": {"population": 4, "elitism": 4}}, "search.ga.elitism: must be below search.ga.population"),
        (
            {"ga": {"population": 4, "tournament_size": 5}},
            "search.ga.tournament_size: must be at most search.ga.population",
        ),
        (
            {"regularized_evolution": {"sise": 3}},
            "search.regularized_evolution.sise: unknown key (known: population, sample_size)",
        ),
        (
            {"regularized_evolution": {"population": 4, "sample_size": 5}},
            "search.regularized_evolution.sample_size: must be at most the population",
        ),
    ],
)
def test_the_strategies_own_sections_refuse_bad_input_in_one_line_under_the_full_key_path(search, message):
    """`pso`, `ga` and `regularized_evolution` are declared by their strategies' modules, and refused as every
    built-in section is: one line, the key path first, rules across fields included."""
    with pytest.raises(UserError) as refused:
        parse_config({"search": search})
    assert str(refused.value) == message and refused.value.key == message.partition(":")[0]


def test_a_strategy_section_is_overridden_and_saved_with_its_defaults():
    """`--set search.pso.w=...` reaches the registered section; the saved config writes every registered
    section whole (given or not) and reads back to the same config."""
    config = load_config("smoke", ["search.pso.w=0.5", "search.ga.population=5"])
    assert config.search.section("pso") == PSOConfig(w=0.5) and config.search.section("ga") == GAConfig(population=5)
    saved = yaml.safe_load(config.to_yaml())["search"]
    assert saved["pso"] == asdict(PSOConfig(w=0.5)) and saved["ga"] == asdict(GAConfig(population=5))
    assert saved["regularized_evolution"] == asdict(EvolutionConfig()) and saved["hgapso"] == asdict(HGAPSOConfig())
    assert parse_config(yaml.safe_load(config.to_yaml())).to_yaml() == config.to_yaml()
    assert Config().to_dict()["search"]["pso"] == asdict(PSOConfig())  # a config built in code holds them too
    with pytest.raises(UserError, match=r"smoke\.yaml: search\.pso\.w: must be <= 2, got 2\.5 \(given by --set\)$"):
        load_config("smoke", ["search.pso.w=2.5"])


def test_a_section_or_strategy_declared_twice_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        register("burst-2", config=BurstConfig, section="burst")(type("Again", (Burst,), {}))
    with pytest.raises(ValueError, match="declared twice"):
        register("burst-3", config=BurstConfig, section="pso")(type("Again", (Burst,), {}))
    with pytest.raises(ValueError, match="registered twice"):
        register("burst")(type("Again", (Burst,), {}))
