"""mkdocs hook: the CLI reference, generated from the argparse parser (``activestream.cli.build_parser()``).

Replaces ``<!-- generated: cli -->`` with ``activestream <command> --help`` for every
command and sub-command, so the page is what the installed CLI prints.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- generated: cli -->"


def _commands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of subcommands
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _commands(sub, f"{prefix} {name}")


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width: fix it for the page
    from activestream.cli import build_parser

    parser = build_parser()
    parts = []
    for name, sub in [("activestream", parser), *_commands(parser, "activestream")]:
        parts += [f"## `{name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
