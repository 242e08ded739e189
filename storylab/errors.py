"""The one exception type that reaches the user as a single clear line.

Every command that reads a file or a parameter raises :class:`StorylabError` with a message that
names the problem; the CLI prints ``error: <message>`` and exits non-zero, without a traceback.
"""

from __future__ import annotations


class StorylabError(Exception):
    """A user-facing error: bad input, a missing or foreign file, an impossible configuration."""

    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by the CLI's handler so that ``finally`` blocks run (temporary
    files removed, locks released) before the process exits with 143. Not an ``Exception``: no
    ``except Exception`` may swallow it."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`StorylabError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise StorylabError(message)
