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
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # only a missing module of our own is tolerated
        if exc.name != _name:
            raise


def main() -> None:
    """Run the CLI; turn :class:`StorylabError` into one clear line and its exit code."""
    try:
        app()
    except StorylabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
