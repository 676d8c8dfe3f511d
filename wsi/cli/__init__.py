"""Command line: a thin click layer over the library. Nothing else imports this module.

``wsi-heatmap SLIDE...`` runs the whole pipeline; sub-commands run single stages.
Heavy libraries (TensorFlow, dask, the web server) are imported inside the commands
that need them, so ``wsi-heatmap --help`` is instant.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from wsi.cli.flags import FlagFormatter, say
from wsi.errors import WsiError
from wsi.quiet_import import quiet_first_import

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("wsi")

EXISTING = click.Path(exists=False, path_type=Path)


class _DefaultGroup(click.Group):
    """A group whose default command is ``run``: ``wsi-heatmap SLIDE`` = ``run SLIDE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags = {"--debug", "-v", "--verbose", "-q", "--quiet"}
        for i, arg in enumerate(args):
            if arg in flags:
                continue
            if arg in ("--help", "-h", "--version"):
                break
            if arg not in self.commands:
                args = [*args[:i], "run", *args[i:]]
            break
        return super().parse_args(ctx, args)


_HELP = """Find metastases in whole-slide images: tile, score, stitch a heatmap, export.

\b
  wsi-heatmap SLIDE... [--out DIR]         the whole pipeline (default command)
  wsi-heatmap tile|score|stitch ...        single stages on the same store
  wsi-heatmap train / eval-patches         the patch classifier
  wsi-heatmap stage OUT                    patients' pN stages (Camelyon17)
  wsi-heatmap evaluate OUT --annotations   metrics against the ground truth
  wsi-heatmap view OUT [--annotations]     local web viewer
  wsi-heatmap doctor                       check the installation
"""


class _TqdmAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines on stderr that do not break a progress bar drawn there."""

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(self.stream, "isatty", lambda: False)():
            super().emit(record)  # bars are off when stderr is not a terminal
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


@click.group(
    cls=_DefaultGroup,
    help=_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="wsi-heatmap")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool, quiet: bool) -> None:
    """Set up logging for every command (the help text is ``_HELP``)."""
    ctx.obj = {"debug": debug, "quiet": quiet}
    level = (
        logging.DEBUG
        if verbose or debug
        else logging.WARNING
        if quiet
        else logging.INFO
    )
    handler = _TqdmAwareHandler(sys.stderr)
    handler.setFormatter(FlagFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in ("distributed", "tensorflow", "absl", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 1, tracebacks only with ``--debug``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not ({"-v", "--verbose"} & set(args) or debug):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ chatter
        quiet_first_import("tensorflow")  # and what it prints before that applies
    try:
        cli.main(args=args, prog_name="wsi-heatmap", standalone_mode=False)
    except click.exceptions.Abort:
        say("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except WsiError as err:
        if debug:
            raise
        say(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        say("interrupted: run the same command again to resume", err=True)
        sys.exit(130)
    except Exception as err:
        if debug:
            raise
        say(
            f"unexpected error: {type(err).__name__}: {err} (rerun with --debug "
            "for the traceback and report it)",
            err=True,
        )
        sys.exit(2)


from wsi.cli import commands as _commands  # noqa: E402  (registers the sub-commands)

_commands.register(cli)
