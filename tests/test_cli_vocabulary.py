"""The old spellings of the guidance scale (`--guidance-scale`, `--cfg-scale`) in every command that
took them: accepted as `--scale`, absent from `--help` and from "Possible options" suggestions.

The commands are read from the hardened command tree, so a command that gains one of the old names
is checked too.
"""

import pytest

from storylab.cli_types import HIDDEN_ALIASES
from tests.cli_runner import run_cli


def commands_with_aliases():
    """(command path, alias) for every command whose guidance-scale option also answers to a hidden alias."""
    from storylab.cli import command

    found = []

    def walk(cmd, path=""):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
            return
        for param in cmd.params:
            for alias, name in HIDDEN_ALIASES.items():
                if name in param.opts and _parses(cmd, alias):
                    found.append((path, alias))

    def _parses(cmd, alias):
        import click

        try:
            ctx = cmd.make_context(cmd.name, [*REQUIRED.get(cmd.name, []), alias, "2.5"], resilient_parsing=True)
        except click.UsageError:
            return False
        return ctx.params.get(_scale_param(cmd)) == 2.5

    walk(command())
    return found


REQUIRED = {"generate": ["a caption"]}  # camera generate's positional caption


def _scale_param(cmd):
    return next(p.name for p in cmd.params if "--scale" in p.opts)


CASES = commands_with_aliases()


def test_the_commands_that_took_the_old_names_are_found():
    paths = {path for path, _ in CASES}
    assert {"camera generate", "evaluate controlnet", "evaluate zoo", "evaluate director"} <= paths, paths


@pytest.mark.parametrize("path,alias", CASES, ids=[f"{p} {a}" for p, a in CASES])
def test_an_old_name_is_hidden_from_help_and_from_suggestions(path, alias):
    help_text = run_cli(*path.split(), "--help").stdout
    assert "--scale" in help_text and alias not in help_text
    typo = run_cli(*path.split(), alias[:-1], "2")  # one letter short of the old name
    assert typo.returncode == 2 and alias not in typo.stderr and "Possible options: --scale" in typo.stderr, typo.stderr


def test_commands_without_the_old_names_refuse_them():
    r = run_cli("sample", "digits", "--guidance-scale", "2")
    assert r.returncode == 2 and "No such option: --guidance-scale" in r.stderr
