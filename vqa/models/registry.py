"""One registry mechanism for every kind of model component (fusions, caption decoders;
the other kinds move onto it next, issue 36).

A registry maps names to classes. A component is a class registered under a name; its
constructor's arguments after the ones the builder passes are its options (defaults
from the signature), which a config may set and the constructor validates. A user's
own component is registered from their code the same way as a built-in one.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from vqa.errors import ConfigError


class Registry(Mapping):
    """Name -> class for one kind of component, read like a dict.

    Args:
        kind: what the components are, for messages ("fusion", "decoder").
        adds: how a user registers one, named in the unknown-name error.
    """

    def __init__(self, kind: str, adds: str):
        self.kind, self.adds = kind, adds
        self._classes: dict[str, type] = {}

    def add(self, name: str, cls: type) -> type:
        """Register `cls` as `name`; the same class again (a module imported twice, a
        notebook cell re-run) replaces itself, another class under a taken name is an
        error."""
        known = self._classes.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"The {self.kind} name {name!r} is taken by {known.__qualname__}.")
        self._classes[name] = cls
        return cls

    def decorator(self, name: str, base: type):
        """A class decorator that registers a subclass of `base` as `name` (what each
        kind's register_... function returns)."""

        def add(cls: type) -> type:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                article = "An" if self.kind[0] in "aeiou" else "A"
                raise TypeError(
                    f"{article} {self.kind} subclasses {base.__name__}. Received: {cls!r}"
                )
            return self.add(name, cls)

        return add

    def get_class(self, name: str) -> type:
        """The class registered as `name`; an unknown name is a ConfigError that lists
        the registered ones and the nearest."""
        if name not in self._classes:
            near = difflib.get_close_matches(str(name), list(self._classes), n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Expected one of {sorted(self._classes)} "
                f"({self.adds} adds one).{hint}"
            )
        return self._classes[name]

    def __getitem__(self, name: str) -> type:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._classes)})"


def constructor_options(cls: type, passed: tuple[str, ...] = ()) -> dict[str, Any]:
    """A component's own options and their defaults: its constructor's named arguments,
    but `self`, those in `passed` (given by the builder) and **kwargs."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.name not in ("self", *passed) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
