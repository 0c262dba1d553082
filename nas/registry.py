"""A name -> factory registry, after timm's model registry: adding a dataset, strategy or objective is one file.

Each kind keeps one `Registry`; an implementation registers itself with `@REGISTRY.register("name")`, and the
config's name is looked up with `REGISTRY.get(name, key="dataset.name")`, which raises a `UserError` naming the
key and the known names.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

from nas.errors import UserError, shown

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories of one kind (datasets, strategies, objectives)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str, key: str | None = None) -> T:
        if name not in self._items:
            known = ", ".join(sorted(self._items))
            raise UserError(f"unknown {self.kind} {shown(name)} (known: {known})", key=key)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)
