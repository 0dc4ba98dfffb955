"""`engine.record` behaves as the dataclasses it replaced, checked against real dataclasses."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from engine import events as ev
from engine.record import FrozenRecordError, factory, record, replace
from engine.state import ActionState, RunState


@record
class Mutable:
    """A mutable record."""

    name: str
    count: int = 0
    tags: list[str] = factory(list)

    def shout(self) -> str:
        return self.name.upper()


@dataclasses.dataclass(slots=True)
class MutableDC:
    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


@record(frozen=True)
class Frozen:
    kind: str
    data: dict[str, Any] = factory(dict)
    seq: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenDC:
    kind: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    seq: int = 0


def test_init_defaults_and_fresh_factories() -> None:
    a, b = Mutable("a"), Mutable("b", 2, ["x"])
    assert (a.name, a.count, a.tags) == ("a", 0, [])
    assert (b.name, b.count, b.tags) == ("b", 2, ["x"])
    assert Mutable("c").tags is not Mutable("c").tags  # one list per instance
    assert Mutable(name="k", tags=["t"]).tags == ["t"]
    with pytest.raises(TypeError):
        Mutable()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Mutable("a", 1, [], "extra")  # type: ignore[call-arg]
    assert Mutable("a").shout() == "A"
    assert Mutable.__doc__ == "A mutable record."


def test_repr_and_equality_are_the_dataclass_ones() -> None:
    assert repr(Mutable("a", 1, ["t"])).removeprefix("Mutable") == repr(
        MutableDC("a", 1, ["t"])
    ).removeprefix("MutableDC")
    assert repr(Frozen("k", {"a": 1}, 3)).removeprefix("Frozen") == repr(
        FrozenDC("k", {"a": 1}, 3)
    ).removeprefix("FrozenDC")
    assert Mutable("a", 1) == Mutable("a", 1)
    assert Mutable("a", 1) != Mutable("a", 2)
    assert Mutable("a") != MutableDC("a")  # another class is never equal
    assert Mutable("a").__eq__(("a", 0, [])) is NotImplemented


def test_slots_hash_and_frozen() -> None:
    m = Mutable("a")
    m.count = 5
    assert m.count == 5
    with pytest.raises(AttributeError):
        m.other = 1  # type: ignore[attr-defined]
    assert Mutable.__slots__ == ("name", "count", "tags")
    assert Mutable.__match_args__ == ("name", "count", "tags")
    with pytest.raises(TypeError):
        hash(m)  # mutable and compared by value
    f = Frozen("k", {}, 1)
    with pytest.raises(FrozenRecordError):
        f.seq = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del f.seq
    with pytest.raises(TypeError):
        hash(f)  # a dict field: unhashable, as the frozen dataclass
    with pytest.raises(TypeError):
        hash(FrozenDC("k", {}, 1))
    assert hash(ev.LogBatch("r", "s", "a", 1, (), ())) == hash(
        ev.LogBatch("r", "s", "a", 1, (), ())
    )


def test_replace_and_copies() -> None:
    f = Frozen("k", {"a": 1}, 1)
    g = replace(f, seq=2)
    assert (g.kind, g.data, g.seq) == ("k", {"a": 1}, 2) and f.seq == 1
    with pytest.raises(TypeError):
        replace(f, nope=1)
    m = Mutable("a", 1, ["t"])
    deep = copy.deepcopy(m)
    assert deep == m and deep.tags is not m.tags


def test_engine_state_snapshot_is_a_deep_copy() -> None:
    action = ActionState("Build", "build", 1, artifacts=[{"name": "x"}])
    state = RunState("id", 1, "p", 1, "PARALLEL", {}, {"id": "c"}, {}, [], 0.0)
    snap = state.snapshot()
    assert snap == state and snap is not state and snap.commit is not state.commit
    copied = copy.deepcopy(action)
    copied.artifacts.append({"name": "y"})
    assert action.artifacts == [{"name": "x"}]


def test_events_keep_their_fields_and_order() -> None:
    e = ev.Event("run.status", "r1", 1.5, {"status": "Succeeded"}, 7)
    assert ev.Event.__match_args__ == ("type", "run_id", "ts", "data", "seq")
    assert e == ev.Event.from_json(e.to_json())
    assert ev.Event("t", None, 0.0).data == {} and ev.Event("t", None, 0.0).seq == 0
