"""The documentation site's sources: every page in the navigation, every foundation module in the API reference.

``mkdocs build --strict`` (run by ``.ci/run``) fails on a broken link or an unresolved reference,
but only reports a page missing from ``nav``, and cannot know a module that no page names.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

import storylab

ROOT = Path(storylab.__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FOUNDATION = ("diffusion", "guidance", "metrics", "training")
COMMAND_MODULES = {"cli"}  # they only parse and print; `storylab COMMAND --help` is their reference


def nav_pages(entry) -> list[str]:
    """Every page file named in a mkdocs ``nav`` entry (a string, a list or a {title: entry} mapping)."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in nav_pages(item)]
    return [page for value in entry.values() for page in nav_pages(value)]


def directives(page: Path) -> set[str]:
    """The objects a page hands to mkdocstrings (``::: dotted.path`` lines)."""
    return set(re.findall(r"^::: (\S+)\s*$", page.read_text(encoding="utf-8"), flags=re.M))


def test_every_page_is_in_the_navigation_and_every_navigation_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert sorted(pages - set(listed)) == []
    assert sorted(set(listed) - pages) == []
    assert len(listed) == len(set(listed)), "a page is listed twice"


@pytest.mark.parametrize("package", FOUNDATION)
def test_the_api_reference_names_every_library_module_of_the_foundation(package):
    modules = {f"storylab.{package}.{f.stem}" for f in (ROOT / "storylab" / package).glob("*.py")
               if not f.stem.startswith("_") and f.stem not in COMMAND_MODULES}
    assert sorted(modules - directives(DOCS / "api" / f"{package}.md")) == []


def test_every_api_directive_names_a_module_that_exists():
    for page in (DOCS / "api").glob("*.md"):
        for target in directives(page):
            assert importlib.util.find_spec(target) is not None, f"{page.name}: {target}"


def test_every_public_function_and_class_of_the_foundation_has_a_docstring():
    missing = []
    for package in FOUNDATION:
        for path in (ROOT / "storylab" / package).glob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            missing += [f"{path.relative_to(ROOT)}:{node.name}" for node in tree.body
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                        and not node.name.startswith("_") and not ast.get_docstring(node)]
    assert missing == []


def _api_reference_hooks():
    pytest.importorskip("griffe", reason="the docs extra: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("api_reference", DOCS / "hooks" / "api_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_code_spans():
    hooks = _api_reference_hooks()
    text = ("Calls :func:`use_threads` and :py:meth:`Guided.__call__`, raises "
            ":class:`~storylab.errors.StorylabError`; reads :data:`RULES`. ``plain`` and `md` stay.")
    assert hooks.without_roles(text) == ("Calls `use_threads` and `Guided.__call__`, raises "
                                         "`storylab.errors.StorylabError`; reads `RULES`. ``plain`` and `md` stay.")


def test_a_reexported_object_is_documented_once_where_it_is_defined(tmp_path):
    hooks = _api_reference_hooks()
    import griffe

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('from pkg.contract import Context\n__all__ = ["Context"]\n')
    (package / "contract.py").write_text('class Context:\n    """One step."""\n')
    (package / "samplers.py").write_text('from pkg.contract import Context\n\n\n'
                                         'def sample(ctx: Context) -> None:\n    """Sample."""\n\n\n'
                                         '__all__ = ["Context", "sample"]\n')
    extensions = griffe.load_extensions(hooks.NoReexports)
    loaded = griffe.load("pkg", search_paths=[tmp_path], extensions=extensions)
    assert set(loaded["samplers"].members) - {"__all__"} == {"sample"}
    assert "Context" in loaded["contract"].members and "Context" in loaded.members  # the package keeps its face
