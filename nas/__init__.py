"""evonas: evolutionary neural architecture search (hybrid GA-PSO over architectures and shortcuts)."""

__version__ = "0.1.0"
