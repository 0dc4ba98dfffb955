"""Make untrusted output safe for a terminal.

Action output may hold any bytes: escape sequences that set the window title, clear the
screen, switch to the alternate screen or plant hyperlinks. Only colour (SGR) sequences may
pass, and only when the caller asks for them; every other control character is made visible.
"""

from __future__ import annotations

import re

# CSI ... final byte, OSC ... BEL/ST, other two-byte ESC sequences.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (title, hyperlink, clipboard)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]?"  # other ESC sequences, or a lone ESC
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def _visible(match: re.Match[str]) -> str:
    ch = match.group(0)
    return "\ufffd" if ch in "\x00" else f"^{chr(ord(ch) + 64)}" if ord(ch) < 32 else "\ufffd"


def terminal_safe(text: str, *, keep_colour: bool = False) -> str:
    """Drop escape sequences (keeping SGR colour if asked) and show other controls as ^X."""
    if text.isprintable():
        return text
    if "\x1b" in text:

        def repl(m: re.Match[str]) -> str:
            seq = m.group(0)
            return seq if keep_colour and _SGR.fullmatch(seq) else ""

        text = _ESCAPE.sub(repl, text)
    if _CONTROL.search(text):
        if keep_colour:
            parts = _SGR.split(text)
            sgrs = _SGR.findall(text)
            out = [_CONTROL.sub(_visible, parts[0])]
            for sgr, part in zip(sgrs, parts[1:], strict=True):
                out.append(sgr)
                out.append(_CONTROL.sub(_visible, part))
            return "".join(out)
        text = _CONTROL.sub(_visible, text)
    return text


def strip_ansi(text: str) -> str:
    return terminal_safe(text, keep_colour=False)
