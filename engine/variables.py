"""`#{namespace.key}` substitution.

In `run` commands a reference becomes an environment variable expansion, quoted for the
position it lands in, and the value travels in the environment (`resolve_shell_env`), so
untrusted text such as a commit message is always data and never code, whatever quoting
context it sits in. In env values, params and messages the raw value is used.
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
        if state == HEREDOC:
            return value
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
        if state in ('"', HEREDOC):
            return "${" + name + "}"
        if state == "'":
            return "'\"${" + name + "}\"'"
        return '"${' + name + '}"'

    return _substitute(text, render), env


_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([A-Za-z0-9_.-]+))")
HEREDOC = "<<"
"""The state of a reference in the body of a heredoc whose delimiter is not quoted."""


def _substitute(text: str, render: Callable[[str, str, str], str]) -> str:
    """Replace each reference by `render(namespace, key, state)`.

    The state is "", "'" or '"' (the quotes the reference sits in) or HEREDOC. A small bash
    lexer follows quotes through `$(...)` and backticks (which start unquoted again, even
    inside "..."), skips comments (references there stay as written) and heredoc bodies
    (a quoted delimiter means no expansion: references stay as written). Where it guesses
    wrong the value is still data, since what runs only expands environment variables.
    """
    out: list[str] = []
    frames: list[tuple[str, str, int]] = []  # the (closer, quote, parens) of outer levels
    closer, quote, parens = "", "", 0  # closer: "" at the top, ")" in $(...), "`" in `...`
    heredocs: list[tuple[str, bool, bool]] = []  # opened on this line: (word, -, quoted)
    i, n = 0, len(text)
    while i < n:
        m = VAR_REF.match(text, i)
        if m:
            out.append(render(m.group(1), m.group(2), quote))
            i = m.end()
            continue
        ch = text[i]
        step = 1
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\" and i + 1 < n:
            step = 2
        elif ch == '"':
            quote = "" if quote == '"' else '"'
        elif text.startswith("$(", i):
            frames.append((closer, quote, parens))
            closer, quote, parens = ")", "", 0
            step = 2
        elif ch == "`":
            if closer == "`" and not quote:
                closer, quote, parens = frames.pop()
            else:
                frames.append((closer, quote, parens))
                closer, quote, parens = "`", "", 0
        elif quote:
            pass  # inside "...": only the cases above matter
        elif ch == "'":
            quote = "'"
        elif ch == "(":
            parens += 1
        elif ch == ")":
            if parens:
                parens -= 1
            elif closer == ")" and frames:
                closer, quote, parens = frames.pop()
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            end = text.find("\n", i)
            step = (n if end < 0 else end) - i  # a comment, kept as written
        elif text.startswith("<<", i) and not text.startswith("<<<", i):
            hd = _HEREDOC.match(text, i)
            if hd:
                word = hd.group(2) if hd.group(2) is not None else hd.group(3)
                heredocs.append((word if word is not None else hd.group(4), bool(hd.group(1)), word is not None))
                step = hd.end() - i
        elif ch == "\n" and heredocs:
            out.append(ch)
            i = _heredoc_bodies(text, i + 1, heredocs, render, out)
            heredocs = []
            continue
        out.append(text[i : i + step])
        i += step
    return "".join(out)


def _heredoc_bodies(
    text: str,
    i: int,
    heredocs: list[tuple[str, bool, bool]],
    render: Callable[[str, str, str], str],
    out: list[str],
) -> int:
    """Copy the bodies of the heredocs opened on the line just ended; returns where they end."""
    for word, strip_tabs, quoted in heredocs:
        while i < len(text):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end + 1
            line = text[i:end]
            if (line.lstrip("\t") if strip_tabs else line).rstrip("\n") == word:
                out.append(line)
                i = end
                break
            if quoted:
                out.append(line)
            else:
                out.append(VAR_REF.sub(lambda m: render(m.group(1), m.group(2), HEREDOC), line))
            i = end
    return i
