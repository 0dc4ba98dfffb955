"""Secret masking for log lines, applied before anything is stored, drawn or exported.

What is masked, following what GitHub and GitLab do (see shared/reference/reliability.md):

* the exact value, and for a multi-line secret each of its lines (output is masked line by
  line, so the whole multi-line value can never appear inside one line);
* base64 of the value at each of the three byte offsets, so `base64("user:" + secret)` is
  caught too. For each offset only the characters whose six bits come entirely from the
  secret are used: that inner run is the same whatever precedes or follows the value
  (a `user:` prefix, the `\\n` that `echo $S | base64` adds, or nothing). The complete
  encodings of `value` and `value + "\\n"` are added as well so the common
  `echo -n $S | base64` case leaves no tail. URL-safe base64 is covered the same way;
* the URL-encoded (`%XX` and `+` for spaces) and JSON-escaped forms when they differ.

Values shorter than `MIN_SECRET_LENGTH` are refused rather than masked: masking a short
value would blank out ordinary words and gives a false sense of safety (GitLab's rule).

Known limits: base64 wrapped by `base64` at 76 columns is only masked where a whole inner
run sits on one line; an action that re-encodes a secret in some other way (hex, reversed,
character by character) is not caught, and nothing can catch that in general.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 8

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SecretTooShort(ValueError):
    """A secret too short to be masked without also masking ordinary text."""


def _b64_inner(data: bytes, offset: int) -> str:
    """The base64 characters that depend only on `data` when it starts at byte `offset` mod 3.

    Character i of a base64 stream holds bits [6i, 6i + 6); the data occupies bits
    [8 * offset, 8 * (offset + len(data))). Characters fully inside are stable whatever
    surrounds the data.
    """
    encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
    start = -(-8 * offset // 6)  # ceil
    end = (8 * (offset + len(data))) // 6
    return encoded[start:end]


def _encoded_forms(value: str) -> set[str]:
    """The encodings of `value` that may show up in a log line."""
    forms: set[str] = set()
    raw = value.encode("utf-8")
    for whole in (raw, raw + b"\n"):
        encoded = base64.b64encode(whole).decode("ascii")
        forms.add(encoded)
        forms.add(encoded.rstrip("="))
    for offset in range(3):
        inner = _b64_inner(raw, offset)
        if len(inner) >= MIN_SECRET_LENGTH:
            forms.add(inner)
    forms |= {f.replace("+", "-").replace("/", "_") for f in forms}
    forms.add(quote(value, safe=""))
    forms.add(quote_plus(value, safe=""))
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return forms


def _patterns_for(secret: str) -> set[str]:
    """Every string to mask for one secret; raises SecretTooShort when it cannot be masked."""
    if len(secret.strip()) < MIN_SECRET_LENGTH:
        raise SecretTooShort(
            f"secret of {len(secret.strip())} characters refused: masked values need at least "
            f"{MIN_SECRET_LENGTH} characters (shorter ones would mask ordinary words)"
        )
    lines = [part.strip() for part in _LINE_BREAK.split(secret)]
    lines = [line for line in lines if len(line) >= MIN_SECRET_LENGTH]
    if not lines:
        raise SecretTooShort(
            f"multi-line secret refused: output is masked line by line and none of its lines "
            f"has at least {MIN_SECRET_LENGTH} characters"
        )
    patterns: set[str] = set()
    for line in lines:
        patterns.add(line)
        patterns |= _encoded_forms(line)
    patterns |= _encoded_forms(secret)
    stripped = secret.strip()
    if stripped != secret:
        patterns |= _encoded_forms(stripped)
    # A form holding a line break can never appear inside one output line. Keeping them out
    # also means masking lines joined by "\n" equals masking each line (process.py uses it).
    return {p for p in patterns if len(p) >= MIN_SECRET_LENGTH and "\n" not in p and "\r" not in p}


class Masker:
    """Replaces every known form of every secret with `MASK` in one regex pass per line.

    Build it once per run; `mask` runs on every batch of output, so it first checks for the
    secrets with C-level substring searches and returns the text unchanged (same object) when
    none is present; only then does the regex alternation replace them. No pattern
    contains a line break, so `mask("\n".join(lines))` masks exactly what masking each line
    would: callers may mask a whole batch of already-split lines in one call.
    """

    __slots__ = ("_patterns", "_needles", "_text_re", "_bytes_re", "_byte_needles")

    def __init__(self, secrets: Iterable[str]) -> None:
        patterns: set[str] = set()
        for secret in secrets:
            if secret:
                patterns |= _patterns_for(secret)
        # Longest first so a longer form (full base64) wins over a shorter one it contains.
        self._patterns: tuple[str, ...] = tuple(sorted(patterns, key=lambda p: (-len(p), p)))
        # The pre-check: a regex alternation costs ~80 ns a character here (every position
        # tries every branch), while `needle in text` skips ahead in C, ~15x faster on a
        # 64 KiB batch. A pattern containing another one is implied by it, so only the
        # minimal ones are searched for; the regex runs only when one of them is present.
        self._needles: tuple[str, ...] = tuple(
            p for p in self._patterns if not any(q != p and q in p for q in self._patterns)
        )
        self._byte_needles: tuple[bytes, ...] = ()
        self._text_re: re.Pattern[str] | None = None
        self._bytes_re: re.Pattern[bytes] | None = None
        if self._patterns:
            self._text_re = re.compile("|".join(map(re.escape, self._patterns)))

    @property
    def active(self) -> bool:
        """True when there is at least one secret to mask."""
        return bool(self._patterns)

    def mask(self, text: str) -> str:
        """`text` with every secret form replaced by `MASK`."""
        if self._text_re is None or not text:
            return text
        for needle in self._needles:
            if needle in text:
                return self._text_re.sub(MASK, text)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        """`data` with the UTF-8 encoding of every secret form replaced by `MASK`."""
        if not self._patterns or not data:
            return data
        if self._bytes_re is None:  # built on first use: raw bytes lines are rare
            encoded = [p.encode("utf-8") for p in self._patterns]  # same order: longest first
            self._bytes_re = re.compile(b"|".join(map(re.escape, encoded)))
            self._byte_needles = tuple(n.encode("utf-8") for n in self._needles)
        for needle in self._byte_needles:
            if needle in data:
                return self._bytes_re.sub(MASK.encode("ascii"), data)
        return data

    def __repr__(self) -> str:
        return f"Masker({len(self._patterns)} patterns)"
