"""Write docs/CLI.md, the command reference, from the click commands themselves.

    python tools/cli_docs.py           # rewrite docs/CLI.md
    python tools/cli_docs.py --check   # exit 1 if docs/CLI.md is not current

The page is each command's ``--help`` text, so it cannot drift from the code; the
test suite runs ``--check``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

DOC = Path(__file__).resolve().parent.parent / "docs" / "CLI.md"
HEADER = """# Command reference

Generated from the click commands by `python tools/cli_docs.py` (do not edit by hand;
the tests check it is current). `wsi-heatmap SLIDE...` is `wsi-heatmap run SLIDE...`.
"""


def _help(command: click.Command, name: str) -> str:
    with click.Context(command, info_name=name, terminal_width=88) as ctx:
        return command.get_help(ctx)


def render() -> str:
    """The whole page."""
    from wsi.cli import cli

    parts = [
        HEADER,
        "## wsi-heatmap\n",
        "```\n" + _help(cli, "wsi-heatmap") + "\n```\n",
    ]
    assert isinstance(cli, click.Group)
    for name in sorted(cli.commands):
        command = cli.commands[name]
        parts += [
            f"## wsi-heatmap {name}\n",
            "```\n" + _help(command, f"wsi-heatmap {name}") + "\n```\n",
        ]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    page = render()
    if args.check:
        if not DOC.is_file() or DOC.read_text() != page:
            print(
                f"{DOC} is not current: run python tools/cli_docs.py", file=sys.stderr
            )
            return 1
        return 0
    DOC.write_text(page)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
