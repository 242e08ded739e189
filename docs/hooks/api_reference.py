"""griffe extensions for the API reference (mkdocs.yml names them): docstring roles and re-exports.

* :class:`SphinxRoles`: storylab's docstrings name other objects the Sphinx way (``:func:`name```,
  ``:data:`RULES```); Markdown has no such roles, so mkdocstrings would print them literally. Each
  role becomes a plain code span of its target (a leading ``~`` dropped). No link is made: a target
  outside the reference would fail the strict build.
* :class:`NoReexports`: a module that re-exports an imported name in ``__all__`` (``samplers``
  exports ``StepContext`` from ``contract``) would show that object's whole documentation a second
  time; each object is documented once, in the module that defines it.
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


class NoReexports(griffe.Extension):
    """Drops a module's imported names (griffe's aliases) once the module's members are known."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if mod.is_init_module:  # a package's __init__ is the public face of its re-exports: keep them
            return
        for name in [name for name, member in mod.members.items() if member.is_alias]:
            mod.del_member(name)
