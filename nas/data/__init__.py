"""Datasets: one module a kind, each registered in `DATASETS` and returning an `ImageData`."""

from nas.data.dataset import DATASETS, ImageData

__all__ = ["DATASETS", "ImageData"]
