"""The package version, in a module of its own so that files written for users (`preprocess.json`) can name it
without importing the whole package."""

__version__ = "0.1.0"
