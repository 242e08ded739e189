"""The front door: one ``storylab`` command that gathers every wing's commands.

Bad input reaches the user as one line ``error: <what is wrong>`` and a non-zero exit code; no
traceback. Commands live in each wing's ``cli`` module and register on :mod:`storylab.cli_groups`.
"""

from __future__ import annotations

import importlib
import sys

from storylab.cli_groups import app
from storylab.errors import StorylabError

# Modules that register commands on the groups. A wing whose CLI module is missing is skipped, so
# the front door never breaks because one wing is still being written.
COMMAND_MODULES = (
    "storylab.guidance.cli",
    "storylab.images.cli",
    "storylab.images.features_cli",
    "storylab.images.control_cli",
    "storylab.images.zoo_cli",
    "storylab.camera.cli",
    "storylab.humor.cli",
    "storylab.videoqa.cli",
    "storylab.demo",
    "storylab.app.cli",
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # only a missing module of our own is tolerated
        if exc.name != _name:
            raise


def _click_exceptions():
    """typer >= 0.20 vendors click as ``typer._click``; older releases use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions
    return exceptions


def main() -> None:
    """Run the CLI; turn :class:`StorylabError` and usage errors into one clear line and exit code 2."""
    import typer

    exc_types = _click_exceptions()
    try:
        result = app(standalone_mode=False)
    except exc_types.NoArgsIsHelpError as exc:  # a group called without a command: show its help
        print(exc.ctx.get_help())
        sys.exit(0)
    except exc_types.UsageError as exc:  # unknown command or option, a value of the wrong type
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except exc_types.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except StorylabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
