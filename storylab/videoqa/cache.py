"""A disk cache of model replies keyed by the exact request, so a rerun never pays twice.

One small JSON file per reply under ``<dir>/<key[:2]>/<key>.json``, written atomically; any number
of threads or processes may share the folder. Hand-written (a dozen lines over :mod:`storylab.io`)
rather than a cache library because the key must be the request hash we also log.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from storylab.io import atomic_write_json


def request_key(*parts: Any) -> str:
    """SHA-256 of the JSON encoding of ``parts`` (backend spec, prompt hash, decoding settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """Replies on disk by request key; ``get`` returns None for a miss or an unreadable entry."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The cached reply text for ``key``, or None."""
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))["reply"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, reply: str, **meta: Any) -> None:
        """Store ``reply`` (and optional metadata) under ``key``."""
        atomic_write_json(self._path(key), {"reply": reply, **meta}, indent=0)
