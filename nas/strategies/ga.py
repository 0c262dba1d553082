"""`ga`: the shortcut GA alone, on one fixed architecture. One ask is one generation.

The architecture is `search.architecture` (a list of {layers, growth_rate}, one per block of the space, each
inside the space's ranges) or, when that is not given, the centre of the space rounded as a particle would be.
When the space searches the learning rate, the GA uses the centre of its log range. The population starts as in
hgapso (the all-ones DenseNet string plus distinct random strings) and evolves generation after generation
until the budget ends the search: `search.ga.generations` is the length of hgapso's inner GA per PSO iteration,
and this peer, like every other, runs for the whole budget so that comparisons at equal budget are fair. Every
ask is new work (`nas.strategies.ga_asks`); asynchronously, `ask(n)` hands out the generation's members and
waits once they are all asked, and the next generation breeds when the last of them is told. This strategy
declares the section `search.ga` (`shortcut_ga.GAConfig`), which hgapso's GAs read too.
"""

from typing import Any

from nas.config import SearchConfig
from nas.errors import UserError
from nas.genome.genome import Genome
from nas.genome.space import SearchSpace
from nas.strategies.ga_asks import ask_member, score_waiting, unask
from nas.strategies.hgapso import ADVANCES_PER_DRAW
from nas.strategies.ranking import Score
from nas.strategies.shortcut_ga import GAConfig, ShortcutGA
from nas.strategies.strategy import Strategy, register


def fixed_position(search: SearchConfig, space: SearchSpace) -> list[float]:
    """The particle position of the fixed architecture; a block outside the space is a `UserError`."""
    centre = [(d.low + d.high) / 2 for d in space.dimensions]
    blocks, lr = space.decode(centre)
    if search.architecture is not None:
        if len(search.architecture) != space.num_blocks:
            raise UserError(f"must list {space.num_blocks} blocks, the search space's count", key="search.architecture")
        for b, block in enumerate(search.architecture):
            for name, value, (low, high) in (
                ("layers", block.layers, space.layers[b]),
                ("growth_rate", block.growth_rate, space.growth_rate[b]),
            ):
                if not low <= value <= high:
                    raise UserError(
                        f"must be in the space's range [{low}, {high}]", key=f"search.architecture[{b}].{name}"
                    )
        blocks = tuple((block.layers, block.growth_rate) for block in search.architecture)
    return space.encode(blocks, lr)


@register("ga", config=GAConfig)
class FixedArchitectureGA(Strategy):
    def __init__(self, search: SearchConfig, space: SearchSpace, seed: int):
        super().__init__(search, space, seed)
        self.position = fixed_position(search, space)
        layers = [n for n, _ in space.decode(self.position)[0]]
        self.run = ShortcutGA.start(layers, self.config.population, self.rng)

    def propose(self, limit: int | None) -> list[Genome]:
        asked: list[Genome] = []
        for _ in range(ADVANCES_PER_DRAW):
            for index in self.run.todo():
                if limit is not None and len(asked) >= limit:
                    return asked
                self.run, genome = ask_member(self, self.position, self.run, index, self.config)
                if genome is not None:
                    asked.append(genome)
            if not self.run.complete:
                break
            self.run = self.run.evolve(self.config, self.rng)  # every member was known: breed on
        return asked

    def absorb(self, told: list[tuple[Genome, Score]]) -> None:
        self.run = score_waiting(self, self.position, self.run, {g.key: s for g, s in told})
        if self.run.complete:
            self.run = self.run.evolve(self.config, self.rng)

    def retract(self, withdrawn: list[Genome]) -> None:
        """Withdrawn members are asked again by a later draw: the generation breeds once all are scored."""
        self.run = unask(self, self.position, self.run, {g.key for g in withdrawn})

    def state(self) -> dict[str, Any]:
        return {"ga": self.run.to_dict()}

    def load_state(self, data: dict[str, Any]) -> None:
        self.run = ShortcutGA.from_dict(data["ga"])
