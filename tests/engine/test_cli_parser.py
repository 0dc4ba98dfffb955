"""`build_parser(only=...)`: the one command a start parses reads exactly as in the whole parser."""

from __future__ import annotations

import argparse

import pytest

from engine import cli


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


WHOLE = _commands(cli.build_parser())


def test_there_are_commands_to_compare() -> None:
    assert {"run", "history", "search", "validate", "replay", "prune"} <= set(WHOLE)


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_one_command_alone_is_the_same_command(name: str) -> None:
    alone = _commands(cli.build_parser(name))
    assert list(alone) == [name]
    assert alone[name].format_help() == WHOLE[name].format_help()
    assert alone[name].get_default("func") is WHOLE[name].get_default("func")
    defaults = {a.dest: a.default for a in WHOLE[name]._actions}
    assert {a.dest: a.default for a in alone[name]._actions} == defaults


def test_an_unknown_name_gets_the_whole_parser() -> None:
    assert set(_commands(cli.build_parser("runn"))) == set(WHOLE)


def test_main_parses_with_the_single_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []
    real = cli.build_parser

    def spy(only: str | None = None) -> argparse.ArgumentParser:
        parser = real(only)
        choices = _commands(parser)
        if only in choices:
            choices[only].set_defaults(func=lambda args: seen.append(args) or 0)
        return parser

    monkeypatch.setattr(cli, "build_parser", spy)
    assert cli.main(["history", "--json", "--limit", "3"]) == 0
    assert len(seen) == 1 and seen[0].limit == 3 and seen[0].json and seen[0].command == "history"
