"""`Parent`: what a whole evaluation of `search.inherit` starts from (`nas.evaluate.job`, `nas.run.inheritance`).

Its own module because both the job and the objective contract name it, and the job already imports the
contract.
"""

from dataclasses import dataclass, field

from nas.genome.genome import Genome


@dataclass(frozen=True)
class Parent:
    """What a whole evaluation inherits from (`nas.evaluate.job`): `weights` are the sealed weights of `genome`."""

    genome: Genome
    weights: bytes = field(repr=False)
    epochs: int
    distance: float

    @property
    def key(self) -> str:
        return self.genome.key
