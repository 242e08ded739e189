"""A griffe extension for the API reference: Sphinx cross-reference roles in docstrings as code spans.

storylab's docstrings name other objects the Sphinx way (``:func:`use_threads```, ``:data:`RULES```);
Markdown has no such roles, so mkdocstrings would print them literally. Each role becomes a plain
code span of its target (a leading ``~`` dropped). No link is made: a target outside the reference
would fail the strict build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|data|mod|meth|attr|exc|obj|const|ref):`~?([^`]+)`")


def without_roles(text: str) -> str:
    """``text`` with every Sphinx role ``:kind:`target``` replaced by the code span ``target``."""
    return ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrites each docstring once, when griffe creates its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = without_roles(obj.docstring.value)
