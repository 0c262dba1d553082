"""The two encodings (architecture level, shortcut level), the genome that pairs them, and file formats."""

from nas.genome.architecture import Architecture, load_architecture, save_architecture
from nas.genome.genome import BlockGene, Genome
from nas.genome.space import SearchSpace, load_space

__all__ = [
    "Architecture",
    "BlockGene",
    "Genome",
    "SearchSpace",
    "load_architecture",
    "load_space",
    "save_architecture",
]
