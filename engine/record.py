"""`@record`: a slotted class with `__init__`, `__repr__` and `__eq__` built from its fields.

What `@dataclass(slots=True)` gives the engine's state and event classes, built at about a
third of the cost: `dataclasses` spends 1-2 ms a class here (a compile per method, a
signature for the docstring, Field objects), and `bakery run` imports nine such classes
before its first event. Fields are the class annotations in order; a default is a class value, or
`factory(list)` for a fresh value per instance. `frozen=True` refuses assignment after
`__init__`, like a frozen dataclass. Type checkers read it as a dataclass (PEP 681).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

__all__ = ["Factory", "FrozenRecordError", "factory", "record", "replace"]

T = TypeVar("T")


class FrozenRecordError(AttributeError):
    """Assignment to a field of a frozen record."""


class Factory:
    """A default made by calling `make` for each new instance (dataclasses' default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def factory(make: Callable[[], T]) -> T:
    """`field: list[str] = factory(list)`: a fresh default per instance."""
    return Factory(make)  # type: ignore[return-value]


_MISSING = object()


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r}")


@dataclass_transform(kw_only_default=False, field_specifiers=(factory,))
def record(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    """Make `cls` a record (see the module docstring): `@record` or `@record(frozen=True)`."""

    def wrap(cls: type[T]) -> type[T]:
        return _build(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _build(cls: type[T], frozen: bool) -> type[T]:
    own = cls.__dict__
    names = list(own.get("__annotations__", {}))
    env: dict[str, Any] = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params: list[str] = []
    body: list[str] = []
    for name in names:
        default = own.get(name, _MISSING)
        value = name
        if default is _MISSING:
            params.append(name)
        elif isinstance(default, Factory):
            env[f"_make_{name}"] = default.make
            params.append(f"{name}=_MISSING")
            value = f"_make_{name}() if {name} is _MISSING else {name}"
        else:
            env[f"_default_{name}"] = default
            params.append(f"{name}=_default_{name}")
        body.append(f"_set(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    mine = "(" + "".join(f"self.{n}, " for n in names) + ")"
    theirs = "(" + "".join(f"other.{n}, " for n in names) + ")"
    shown = ", ".join(f"{n}={{self.{n}!r}}" for n in names)
    source = "\n".join(
        [
            f"def __init__(self, {', '.join(params)}):",
            *(f"    {line}" for line in body or ["pass"]),
            "def __repr__(self):",
            f"    return f'{{type(self).__qualname__}}({shown})'",
            "def __eq__(self, other):",
            "    if other.__class__ is self.__class__:",
            f"        return {mine} == {theirs}",
            "    return NotImplemented",
            *(["def __hash__(self):", f"    return hash({mine})"] if frozen else []),
        ]
    )
    exec(source, env)  # noqa: S102 - built from the class's own field names
    namespace = {
        k: v for k, v in own.items() if k not in names and k not in ("__dict__", "__weakref__")
    }
    namespace["__slots__"] = namespace["__match_args__"] = namespace["__record_fields__"] = tuple(
        names
    )
    for method in ("__init__", "__repr__", "__eq__"):
        if method not in own:
            env[method].__qualname__ = f"{cls.__qualname__}.{method}"
            namespace[method] = env[method]
    if frozen:
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
        namespace.setdefault("__hash__", env["__hash__"])  # by value, as a frozen dataclass
    elif "__eq__" not in own:
        namespace["__hash__"] = None  # mutable and compared by value: unhashable, as a dataclass
    built = type(cls)(cls.__name__, cls.__bases__, namespace)
    built.__qualname__ = cls.__qualname__
    return built


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record `obj` with some fields changed (dataclasses.replace)."""
    names: tuple[str, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    values = {n: getattr(obj, n) for n in names}
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field(s) {', '.join(sorted(unknown))}")
    values.update(changes)
    return type(obj)(**values)
