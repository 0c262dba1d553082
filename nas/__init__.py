"""evonas: evolutionary neural architecture search (hybrid GA-PSO over architectures and shortcuts)."""

from nas.version import __version__

__all__ = ["__version__"]

# Every strategy declares its name and config section as its package is imported; importing it here, with the
# package, means no config is ever read before that (`nas.config.STRATEGY_NAMES`).
import nas.strategies  # noqa: E402, F401
