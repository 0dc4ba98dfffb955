"""Safe, position-aware YAML loading for pipeline definitions.

`yaml.safe_load` is not enough for a file people edit by hand (see reliability.md): it keeps
the last of two duplicate keys, turns `NO` into False and `3.10` into 3.1, and an alias bomb
loads fast but never finishes being walked. So we take PyYAML's event stream (libyaml when
available) and compose the nodes ourselves, which lets us:

- remember the line/column of every key and value, so any later error can point at it;
- resolve plain scalars with a small YAML 1.2 core-like schema (only booleans, decimal
  integers and null are typed, everything else stays the exact text that was written);
- refuse Python and unknown tags, duplicate keys, recursive aliases and oversized alias
  expansions before any Python object is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from yaml import events as ev

from engine.problems import MAX_BYTES, MAX_PROBLEMS, Problem, sort_problems

try:  # libyaml is ~10x faster; the pure-Python parser yields the same events
    from yaml import CSafeLoader as _EventSource
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _EventSource  # type: ignore[assignment]

MAX_DEPTH = 100
"""Nesting limit; it also keeps libyaml's per-flow-level bookkeeping cheap."""

MAX_ALIAS_NODES = 10_000
"""How many nodes aliases may add in total once expanded ("billion laughs" guard)."""

Pos = tuple[int, int]
Loc = tuple[str | int, ...]
LocateKind = Literal["value", "key", "missing"]

_YAML_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL = (_YAML_TAG + t for t in ("str", "int", "bool", "null"))
_SEQ, _MAP = _YAML_TAG + "seq", _YAML_TAG + "map"
_SCALAR_TAGS = {"!", _STR, _INT, _BOOL, _NULL}

_INT_TEXT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_NULL_TEXT = frozenset({"", "~", "null", "Null", "NULL"})
_MERGE_KEY = "<<"


class YamlError(Exception):
    """The text is not acceptable YAML for us; `problems` says where and why."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sort_problems(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Marks:
    """Source positions (1-based line, column) of every node, keyed by its path in the data.

    Paths use the same segments as pydantic error locations: mapping keys (str) and
    sequence indexes (int).
    """

    def __init__(self) -> None:
        self._values: dict[Loc, Pos] = {(): (1, 1)}
        self._keys: dict[Loc, Pos] = {}

    def set_value(self, loc: Loc, pos: Pos) -> None:
        self._values[loc] = pos

    def set_key(self, loc: Loc, pos: Pos) -> None:
        self._keys[loc] = pos

    def has(self, loc: Sequence[str | int]) -> bool:
        return tuple(loc) in self._values

    def closest(self, loc: Sequence[str | int]) -> Loc:
        """The longest known path along `loc`; unknown segments (pydantic's union tags,
        defaulted fields, shorthand forms) are skipped rather than failing."""
        loc = tuple(loc)
        if loc in self._values:
            return loc
        known: Loc = ()
        for seg in loc:
            candidate = (*known, seg)
            if candidate in self._values:
                known = candidate
        return known

    def locate(self, loc: Sequence[str | int], kind: LocateKind = "value") -> Pos:
        """Where to point for `loc`: its value, its key (unknown keys), or, for a key that is
        missing, the mapping that lacks it."""
        loc = tuple(loc)
        if kind == "missing":
            return self._values[self.closest(loc[:-1])]
        found = self.closest(loc)
        if kind == "key" and found == loc and loc in self._keys:
            return self._keys[loc]
        return self._values[found]


# --------------------------------------------------------------------------- text checks


def _pos_of_byte(data: bytes, offset: int) -> Pos:
    """1-based line/column (in characters) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    col = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, col


def decode_yaml_bytes(data: bytes, path: str) -> str:
    """Decode a definition file as UTF-8 (a BOM is allowed); anything else is a YamlError."""
    if len(data) > MAX_BYTES:
        raise YamlError([_too_big(path, len(data))])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _pos_of_byte(data, exc.start)
        bad = data[exc.start : exc.start + 1].hex()
        message = f"file is not valid UTF-8 (byte 0x{bad} cannot be decoded); save it as UTF-8"
        raise YamlError([Problem(path, line, col, message)]) from None


def _too_big(path: str, size: int) -> Problem:
    return Problem(path, 1, 1, f"file is too large ({size} bytes); the limit is {MAX_BYTES} bytes")


def _encode(text: str, path: str) -> bytes:
    """UTF-8 bytes of `text`, refusing lone surrogates (libyaml would crash on them)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        prefix = text[: exc.start]
        line = prefix.count("\n") + 1
        col = exc.start - (prefix.rfind("\n") + 1) + 1
        char = f"U+{ord(text[exc.start]):04X}"
        raise YamlError([Problem(path, line, col, f"invalid character {char} in text")]) from None


# --------------------------------------------------------------------------- nodes


@dataclass(eq=False)
class _Node:
    pos: Pos
    size: int = field(default=1, kw_only=True)  # node count once aliases are expanded
    height: int = field(default=1, kw_only=True)  # nesting levels once aliases are expanded


@dataclass(eq=False)
class _Scalar(_Node):
    text: str
    value: Any
    plain: bool


@dataclass(eq=False)
class _Seq(_Node):
    items: list[_Node]


@dataclass(eq=False)
class _Map(_Node):
    pairs: list[tuple[_Scalar, _Node]]


@dataclass(eq=False)
class _Alias(_Node):
    target: _Node


def _measure(children: list[_Node]) -> tuple[int, int]:
    """Expanded size and height of a collection holding `children`."""
    size = 1 + sum(c.size for c in children)
    height = 1 + max((c.height for c in children), default=0)
    return size, height


class _Fatal(Exception):
    """Stop composing: going on would be pointless (syntax) or dangerous (alias bomb)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _mark_pos(mark: Any) -> Pos:
    if mark is None:
        return (1, 1)
    return (mark.line + 1, mark.column + 1)


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _plain_value(text: str) -> Any:
    """YAML 1.2 core-like resolution; whatever is not clearly bool/int/null stays text."""
    if text in _NULL_TEXT:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT_TEXT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts; let the schema complain
            return text
    return text


class _Composer:
    """Builds `_Node`s from parser events, collecting every non-fatal problem."""

    def __init__(self, events: Iterator[ev.Event], path: str) -> None:
        self._events = events
        self._path = path
        self.problems: list[Problem] = []
        self._anchors: dict[str, _Node] = {}
        self._open_anchors: set[str] = set()
        self._expanded = 0

    def problem(self, pos: Pos, message: str) -> None:
        self.problems.append(Problem(self._path, pos[0], pos[1], message))
        if len(self.problems) >= MAX_PROBLEMS - 1:
            raise self.fatal(pos, "too many problems; stopped reading here")

    def fatal(self, pos: Pos, message: str) -> _Fatal:
        return _Fatal(Problem(self._path, pos[0], pos[1], message))

    def compose_stream(self) -> _Node | None:
        """The single document of the stream (None when there is none)."""
        root: _Node | None = None
        for event in self._events:
            if isinstance(event, ev.DocumentStartEvent):
                if root is not None:
                    raise self.fatal(
                        _mark_pos(event.start_mark),
                        "expected a single YAML document, found a second one ('---')",
                    )
                root = self.compose_node(next(self._events), depth=1)
                self._anchors.clear()
        return root

    def compose_node(self, event: ev.Event, depth: int) -> _Node:
        pos = _mark_pos(event.start_mark)
        if isinstance(event, ev.AliasEvent):
            return self._alias(event, pos, depth)
        if depth > MAX_DEPTH:
            raise self.fatal(pos, f"nesting is deeper than {MAX_DEPTH} levels")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        if isinstance(event, ev.ScalarEvent):
            node: _Node = self._scalar(event, pos)
        elif isinstance(event, ev.SequenceStartEvent):
            node = self._sequence(event, pos, depth)
        elif isinstance(event, ev.MappingStartEvent):
            node = self._mapping(event, pos, depth)
        else:  # pragma: no cover - the parser guarantees a node event here
            raise self.fatal(pos, f"unexpected YAML event {type(event).__name__}")
        if anchor is not None:
            self._open_anchors.discard(anchor)
            self._anchors[anchor] = node
        return node

    def _alias(self, event: ev.AliasEvent, pos: Pos, depth: int) -> _Node:
        name = event.anchor
        if name in self._open_anchors:
            self.problem(pos, f"recursive alias '*{name}' refers to a node that contains it")
            return _Scalar(pos, text="", value=None, plain=True)
        target = self._anchors.get(name)
        if target is None:
            self.problem(pos, f"unknown alias '*{name}' (no anchor '&{name}' before it)")
            return _Scalar(pos, text="", value=None, plain=True)
        if depth - 1 + target.height > MAX_DEPTH:
            raise self.fatal(pos, f"alias '*{name}' nests deeper than {MAX_DEPTH} levels")
        self._expanded += target.size
        if self._expanded > MAX_ALIAS_NODES:
            raise self.fatal(
                pos,
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes; "
                "refusing what looks like an alias bomb",
            )
        return _Alias(pos, target=target, size=target.size, height=target.height)

    def _check_tag(self, tag: str | None, allowed: set[str], what: str, pos: Pos) -> bool:
        if tag is None or tag in allowed:
            return True
        shown = _show_tag(tag)
        if tag.startswith(_YAML_TAG + "python/"):
            self.problem(pos, f"Python tag '{shown}' is not allowed")
        elif tag in _SCALAR_TAGS | {_SEQ, _MAP}:
            self.problem(pos, f"tag '{shown}' cannot be used on a {what}")
        else:
            self.problem(pos, f"unsupported YAML tag '{shown}'")
        return False

    def _scalar(self, event: ev.ScalarEvent, pos: Pos) -> _Scalar:
        text, tag = event.value, event.tag
        plain = tag is None and bool(event.implicit[0])
        if not self._check_tag(tag, _SCALAR_TAGS, "scalar", pos) or tag in (None, "!", _STR):
            value: Any = _plain_value(text) if plain else text
        else:
            value = self._tagged_value(text, tag, pos)
        return _Scalar(pos, text=text, value=value, plain=plain)

    def _tagged_value(self, text: str, tag: str, pos: Pos) -> Any:
        """`!!int`, `!!bool` and `!!null` must hold a value of that type."""
        value = _plain_value(text)
        expected = {_INT: int, _BOOL: bool, _NULL: type(None)}[tag]
        if type(value) is not expected:
            self.problem(pos, f"'{text}' is not a valid {_show_tag(tag)} value")
            return text
        return value

    def _sequence(self, event: ev.SequenceStartEvent, pos: Pos, depth: int) -> _Seq:
        self._check_tag(event.tag, {"!", _SEQ}, "sequence", pos)
        items: list[_Node] = []
        for child in self._events:
            if isinstance(child, ev.SequenceEndEvent):
                break
            items.append(self.compose_node(child, depth + 1))
        size, height = _measure(items)
        return _Seq(pos, items=items, size=size, height=height)

    def _mapping(self, event: ev.MappingStartEvent, pos: Pos, depth: int) -> _Map:
        self._check_tag(event.tag, {"!", _MAP}, "mapping", pos)
        pairs: list[tuple[_Scalar, _Node]] = []
        first_seen: dict[str, Pos] = {}
        for child in self._events:
            if isinstance(child, ev.MappingEndEvent):
                break
            key = self._key(self.compose_node(child, depth + 1))
            value = self.compose_node(next(self._events), depth + 1)
            if key is None:
                continue
            if key.text in first_seen:
                line = first_seen[key.text][0]
                self.problem(key.pos, f"duplicate key '{key.text}' (first at line {line})")
                continue
            first_seen[key.text] = key.pos
            pairs.append((key, value))
        size, height = _measure([v for _, v in pairs])
        return _Map(pos, pairs=pairs, size=size, height=height)

    def _key(self, node: _Node) -> _Scalar | None:
        """Keys are always the text as written (`on:` is the key "on", not True)."""
        target = node.target if isinstance(node, _Alias) else node
        if not isinstance(target, _Scalar):
            self.problem(node.pos, "a mapping key must be a plain value, not a list or mapping")
            return None
        return _Scalar(node.pos, text=target.text, value=target.text, plain=target.plain)


# --------------------------------------------------------------------------- construction


class _Builder:
    """Turns nodes into plain dict/list/str/int/bool/None, recording each node's position."""

    def __init__(self, composer: _Composer) -> None:
        self.marks = Marks()
        self._composer = composer

    def build(self, node: _Node, loc: Loc) -> Any:
        self.marks.set_value(loc, node.pos)
        if isinstance(node, _Alias):
            value = self.build(node.target, loc)
            self.marks.set_value(loc, node.pos)  # point at the use, not the anchor
            return value
        if isinstance(node, _Scalar):
            return node.value
        if isinstance(node, _Seq):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.items)]
        assert isinstance(node, _Map)
        return self._build_map(node, loc)

    def _build_map(self, node: _Map, loc: Loc) -> dict[str, Any]:
        """Explicit keys win over merged (`<<`) ones; earlier merge sources win over later."""
        result: dict[str, Any] = {}
        merges = [v for k, v in node.pairs if k.plain and k.text == _MERGE_KEY]
        for source in reversed(self._merge_sources(merges)):
            merged = self.build(source, loc)
            if isinstance(merged, dict):
                result.update(merged)
        for key, value in node.pairs:
            if key.plain and key.text == _MERGE_KEY:
                continue
            child = (*loc, key.text)
            self.marks.set_key(child, key.pos)
            result[key.text] = self.build(value, child)
        self.marks.set_value(loc, node.pos)
        return result

    def _merge_sources(self, merges: list[_Node]) -> list[_Node]:
        """The mappings named by `<<:` values (a mapping, or a list of mappings)."""
        sources: list[_Node] = []
        for value in merges:
            target = value.target if isinstance(value, _Alias) else value
            items = target.items if isinstance(target, _Seq) else [value]
            for item in items:
                resolved = item.target if isinstance(item, _Alias) else item
                if isinstance(resolved, _Map):
                    sources.append(item)
                else:
                    self._composer.problem(
                        item.pos, "'<<' (merge) needs a mapping or a list of mappings"
                    )
        return sources


# --------------------------------------------------------------------------- entry point


def _events(text: str) -> Iterator[ev.Event]:
    source = _EventSource(text)
    try:
        while source.check_event():
            yield source.get_event()
    finally:
        source.dispose()


def _char_at(data: bytes, line: int, col: int) -> str:
    """The character at a 1-based position, or "" when there is none."""
    lines = data.split(b"\n", line)
    if len(lines) < line:
        return ""
    text = lines[line - 1].decode("utf-8", errors="replace")
    return text[col - 1] if 0 < col <= len(text) else ""


def _syntax_problem(exc: yaml.YAMLError, data: bytes, path: str) -> Problem:
    """A parser/scanner/reader error as a Problem at the position PyYAML reports."""
    if isinstance(exc, yaml.MarkedYAMLError):
        line, col = _mark_pos(exc.problem_mark or exc.context_mark)
        message = exc.problem or exc.context or "invalid YAML"
        context_mark = exc.context_mark
        if (
            exc.context
            and exc.problem
            and context_mark is not None
            and context_mark.line + 1 != line
        ):
            message = f"{message} ({exc.context} at line {context_mark.line + 1})"
        if _char_at(data, line, col) == "\t":
            message += " (a tab: YAML indents with spaces only)"
        return Problem(path, line, col, f"YAML syntax error: {message}")
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _pos_of_byte(data, min(exc.position, len(data)))
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        return Problem(path, line, col, f"invalid character {shown}: {exc.reason}")
    return Problem(path, 1, 1, f"YAML error: {exc}")


def load_yaml(text: str, path: str) -> tuple[Any, Marks]:
    """Parse one YAML document into plain Python data plus the position of every node.

    Raises YamlError listing every problem found (syntax, tags, duplicate keys, aliases).
    """
    data = _encode(text, path)
    if len(data) > MAX_BYTES:
        raise YamlError([_too_big(path, len(data))])
    composer = _Composer(_events(text), path)
    try:
        root = composer.compose_stream()
    except _Fatal as exc:
        raise YamlError([*composer.problems, exc.problem]) from None
    except yaml.YAMLError as exc:
        raise YamlError([*composer.problems, _syntax_problem(exc, data, path)]) from None
    if composer.problems:
        raise YamlError(composer.problems)
    builder = _Builder(composer)
    try:
        value = None if root is None else builder.build(root, ())
    except _Fatal as exc:
        raise YamlError([*composer.problems, exc.problem]) from None
    if composer.problems:
        raise YamlError(composer.problems)
    return value, builder.marks
