"""`#{namespace.key}` substitution.

In `run` commands every value is quoted for the shell position it lands in (bare, inside
double quotes, inside single quotes), so untrusted text such as a commit message is always
data and never code. In env values, params and messages the raw value is used.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

VAR_REF = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\}")

Scope = Mapping[str, Mapping[str, str]]


class UnresolvedVariable(KeyError):
    """A reference whose namespace or key has no value at run time."""

    def __str__(self) -> str:
        return f"variable #{{{self.args[0]}}} has no value"


def lookup(scope: Scope, namespace: str, key: str) -> str:
    try:
        return str(scope[namespace][key])
    except KeyError:
        raise UnresolvedVariable(f"{namespace}.{key}") from None


def resolve(text: str, scope: Scope) -> str:
    """Raw substitution, for env values, params, approval messages and links."""
    return VAR_REF.sub(lambda m: lookup(scope, m.group(1), m.group(2)), text)


def _quote_for_double(value: str) -> str:
    return re.sub(r'([\\$`"])', r"\\\1", value)


def resolve_shell(text: str, scope: Scope) -> str:
    """Substitute references in a bash command, quoting each value for its position."""
    out: list[str] = []
    state = ""  # "", "'" or '"'
    i = 0
    n = len(text)
    while i < n:
        m = VAR_REF.match(text, i)
        if m:
            value = lookup(scope, m.group(1), m.group(2))
            if state == '"':
                out.append(_quote_for_double(value))
            elif state == "'":
                out.append(value.replace("'", "'\\''"))
            else:
                out.append(shlex.quote(value))
            i = m.end()
            continue
        ch = text[i]
        if ch == "\\" and state != "'" and i + 1 < n:
            out.append(text[i : i + 2])
            i += 2
            continue
        if ch in "'\"":
            if state == "":
                state = ch
            elif state == ch:
                state = ""
        out.append(ch)
        i += 1
    return "".join(out)
