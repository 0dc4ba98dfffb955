"""The `bakery` command: the headless CLI of `engine.cli` with the board plugged in.

Importing this module loads neither Textual nor the board: each command that opens the
board imports it when it runs, so `bakery run --plain`, `history` or `--help` stay fast.
"""

from __future__ import annotations

import argparse
import sys


class _Board:
    """`engine.cli.Board`, backed by tui.launch."""

    def run(self, args: argparse.Namespace) -> int:
        from tui.launch import run_board

        return run_board(args)

    def watch(self, args: argparse.Namespace) -> int:
        from tui.launch import watch

        return watch(args)

    def demo(self, args: argparse.Namespace) -> int:
        from tui.launch import demo

        return demo(args)

    def replay(self, args: argparse.Namespace) -> int:
        from tui.launch import replay

        return replay(args)


def main(argv: list[str] | None = None) -> int:
    from engine.cli import main as cli_main

    return cli_main(argv, board=_Board())


if __name__ == "__main__":
    sys.exit(main())
