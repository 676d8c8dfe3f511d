"""The library names settings; the command line spells them as its flags.

Library messages (errors, warnings) name a setting in backticks as a Python user
writes it: `` `out_dir` ``, `` `overwrite` ``, `` `tiling.stride_px` ``,
`` `pretrained=False` ``. Printed by the command line, `spell_flags` turns each into
the flag that sets it (``--out``, ``--overwrite``, ``--stride``, ``--no-pretrained``),
using the click options themselves and the option table of `wsi.cli.options`: the one
place where an option's meaning is written down.
"""

from __future__ import annotations

import logging
import re
from functools import cache

import click

__all__ = ["FlagFormatter", "say", "spell_flags"]

_SETTING = re.compile(
    r"`([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?(?:=(?:True|False))?)`"
)


@cache
def _flags() -> dict[str, str]:
    """Setting (``dest``, ``section.field``, ``dest=False``) -> flag, every command."""
    from wsi.cli import cli
    from wsi.cli.options import OPTION_FIELDS

    flags: dict[str, str] = {}
    commands = [cli, *cli.commands.values()]
    for command in commands:
        for param in command.params:
            if not isinstance(param, click.Option) or param.name is None:
                continue
            long = [o for o in param.opts if o.startswith("--")] or param.opts
            flags.setdefault(param.name, long[0])
            flags.setdefault(f"{param.name}=True", long[0])
            if param.secondary_opts:
                flags.setdefault(f"{param.name}=False", param.secondary_opts[0])
            section_field = OPTION_FIELDS.get(param.name)
            if section_field is not None:
                flags.setdefault(".".join(section_field), long[0])
    return flags


#: ``RunConfig`` sections a ``--config`` TOML file sets.
_SECTIONS = ("tissue", "tiling", "scoring", "polygons", "detection", "slide_score")


def spell_flags(text: str) -> str:
    """``text`` with every backticked setting spelt as the flag that sets it.

    A section's setting without a flag becomes its place in a ``--config`` file;
    other backticked text stays.

    Examples
    --------
    >>> spell_flags("choose another `out_dir`, or pass `overwrite`")
    'choose another --out, or pass --overwrite'
    >>> spell_flags("lower `tiling.min_tissue_fraction`; `not.a_setting` stays")
    'lower --min-tissue; `not.a_setting` stays'
    >>> spell_flags("`tissue.exclude_pen` true -> false")
    '[tissue] exclude_pen (--config) true -> false'
    """
    flags = _flags()

    def spell(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in flags:
            return flags[name]
        section, _, field = name.partition(".")
        if field and section in _SECTIONS:
            return f"[{section}] {field} (--config)"
        return match.group(0)

    return _SETTING.sub(spell, text)


def say(text: str, *, err: bool = False) -> None:
    """``click.echo`` of library text, its settings spelt as flags."""
    click.echo(spell_flags(text), err=err)


class FlagFormatter(logging.Formatter):
    """Log lines of the command line, with the library's settings spelt as flags."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, settings spelt as flags."""
        return spell_flags(super().format(record))
