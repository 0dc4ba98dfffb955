"""`--json` output: indented for a person at a terminal, one compact line for a pipe."""

from __future__ import annotations

import io
import json

import pytest

from engine import cli


class Stdout(io.StringIO):
    """Standard output that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_json_is_indented_on_a_terminal_and_one_line_in_a_pipe(
    monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    doc = [{"number": 2, "status": "Succeeded", "commit": {"subject": "Naïve café"}}, {"number": 1}]
    out = Stdout(tty)
    monkeypatch.setattr("sys.stdout", out)
    cli._print_json(doc)
    text = out.getvalue()
    assert json.loads(text) == doc
    assert "Naïve café" in text  # never \\u escapes
    lines = text.splitlines()
    if tty:
        assert len(lines) > 5 and lines[1].startswith("  {")
    else:
        assert len(lines) == 1 and '"status": "Succeeded"' in lines[0]
