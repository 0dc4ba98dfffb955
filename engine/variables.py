"""`#{namespace.key}` substitution.

In `run` commands every value is quoted for the shell position it lands in (bare, inside
double quotes, inside single quotes), so untrusted text such as a commit message is always
data and never code. In env values, params and messages the raw value is used.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping

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
    """Substitute references in a bash command, quoting each value for its position.

    Used to show the command in the log; what runs is `resolve_shell_env`, because quoting
    cannot follow every bash context (a heredoc body, a comment, `"$(...)"`, arithmetic).
    """

    def render(namespace: str, key: str, state: str) -> str:
        value = lookup(scope, namespace, key)
        if state == '"':
            return _quote_for_double(value)
        if state == "'":
            return value.replace("'", "'\\''")
        return shlex.quote(value)

    return _substitute(text, render)


ENV_PREFIX = "BAKERY_REF_"


def resolve_shell_env(text: str, scope: Scope) -> tuple[str, dict[str, str]]:
    """A bash command whose references read environment variables, and those variables.

    `#{Src.CommitMessage}` becomes `"${BAKERY_REF_Src_CommitMessage}"` (quoted for its
    position) and the value goes into the returned environment. The value never becomes
    part of the script's text, so whatever it holds (`$(...)`, backticks, quotes, newlines,
    a heredoc's end marker) and wherever the reference sits, bash expands it as data only.
    Bash arithmetic (`$(( ))`, `[[ -eq ]]`) evaluates any variable's text: keep untrusted
    values out of it.
    """
    env: dict[str, str] = {}
    names: dict[tuple[str, str], str] = {}

    def render(namespace: str, key: str, state: str) -> str:
        name = names.get((namespace, key))
        if name is None:
            value = lookup(scope, namespace, key)
            name = f"{ENV_PREFIX}{namespace}_{key}"
            while name in env:  # "a_b"."c" and "a"."b_c" would share a name
                name += "_"
            names[(namespace, key)] = name
            env[name] = value
        if state == '"':
            return "${" + name + "}"
        if state == "'":
            return "'\"${" + name + "}\"'"
        return '"${' + name + '}"'

    return _substitute(text, render), env


def _substitute(text: str, render: Callable[[str, str, str], str]) -> str:
    """Replace each reference by `render(namespace, key, quoting state)`.

    The state is "", "'" or '"': the kind of quotes the reference sits in.
    """
    out: list[str] = []
    state = ""  # "", "'" or '"'
    i = 0
    n = len(text)
    while i < n:
        m = VAR_REF.match(text, i)
        if m:
            out.append(render(m.group(1), m.group(2), state))
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
