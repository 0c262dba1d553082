"""What every part of a report reads: the run's snapshot and the one-line title that names the search."""

from dataclasses import dataclass

from nas.run.snapshot import RunSnapshot


@dataclass(frozen=True)
class ReportContext:
    snapshot: RunSnapshot

    @property
    def strategy(self) -> str:
        return self.snapshot.config.search.strategy

    @property
    def objectives(self) -> list[str]:
        """The run's objectives (`search.objectives`), fitness first; `["fitness"]` for a single objective."""
        return list(self.snapshot.config.search.objectives or ["fitness"])

    @property
    def several_objectives(self) -> bool:
        return len(self.objectives) > 1

    @property
    def title(self) -> str:
        """`<config name> (<strategy>, <objective> objective, seed N)`: enough to tell two reports apart."""
        config = self.snapshot.config
        return f"{config.name} ({self.strategy}, {config.fitness.objective} objective, seed {self.snapshot.seed})"
