"""One registry mechanism for every kind of component a config names: image encoders,
recurrent units, attentions, fusions, caption decoders (vqa.models), backbones
(vqa.features.backbones).

A registry maps names to components. A model component is a class registered under a
name; its constructor's arguments after the ones the builder passes are its options
(defaults from the signature), which a config may set and the constructor validates. A
backbone is a spec (how to build the network, its weights, its preprocessing). A user's
own component is registered from their code the same way as a built-in one.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from vqa.errors import ConfigError


class Registry(Mapping):
    """Name -> component (a class, or a backbone's spec) for one kind, read like a dict.

    Args:
        kind: what the components are, for messages ("fusion", "decoder").
        adds: how a user registers one, named in the unknown-name error.
    """

    def __init__(self, kind: str, adds: str):
        self.kind, self.adds = kind, adds
        self._components: dict[str, Any] = {}

    def add(self, name: str, component):
        """Register `component` as `name`; the same one again (a module imported twice, a
        notebook cell re-run) replaces itself, another under a taken name is an error."""
        known = self._components.get(name)
        if known is not None and _identity(known) != _identity(component):
            taken = getattr(known, "__qualname__", f"another {self.kind}")
            raise ValueError(f"The {self.kind} name {name!r} is taken by {taken}.")
        self._components[name] = component
        return component

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

    def named(self, name: str):
        """What is registered as `name`; an unknown name is a ConfigError that lists the
        registered ones and the nearest."""
        if name not in self._components:
            near = difflib.get_close_matches(str(name), list(self._components), n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Expected one of {sorted(self._components)} "
                f"({self.adds} adds one).{hint}"
            )
        return self._components[name]

    def __getitem__(self, name: str):
        return self._components[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._components)

    def __len__(self) -> int:
        return len(self._components)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._components)})"


def _identity(component):
    """A class, or a spec's callables, by module and qualified name (the same class from a
    re-run notebook cell or a module imported twice is the same); a spec by its fields."""
    if isinstance(component, type) or callable(component):
        return f"{component.__module__}.{component.__qualname__}"
    if dataclasses.is_dataclass(component):
        return tuple(_identity(getattr(component, f.name)) for f in dataclasses.fields(component))
    return component


def constructor_options(cls: type, passed: tuple[str, ...] = ()) -> dict[str, Any]:
    """A component's own options and their defaults: its constructor's named arguments,
    but `self`, those in `passed` (given by the builder) and **kwargs."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.name not in ("self", *passed) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
