"""The guidance rules by name, each with the options it takes: an unknown or inapplicable option is one clear line.

:func:`make_rule` builds a rule from its name and keyword options; :func:`parse_rule_options` reads
``KEY=VALUE`` pairs (the CLI's repeatable ``--rule-option``) into typed values. A rule never
ignores an option it does not take (``cfg`` with ``eta=0.5`` is an error, not plain CFG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from storylab.errors import StorylabError
from storylab.guidance.names import RULE_ALIASES, RULES


@dataclass(frozen=True)
class RuleEntry:
    """How to build one rule: its constructor, the options it takes (name -> type) and the networks it needs."""

    build: Callable[..., Any]
    options: dict[str, type]
    networks: tuple[str, ...] = ()


def _entries() -> dict[str, RuleEntry]:
    from storylab.guidance import guiders as g
    from storylab.guidance import rules as r

    return {
        "none": RuleEntry(r.NoGuidance, {}),
        "cfg": RuleEntry(r.CFG, {"rescale": float}),
        "negative": RuleEntry(lambda **o: r.CFG(reference="negative", **o), {"rescale": float}),
        "negative3": RuleEntry(r.NegativeCFG, {"negative_scale": float}),
        "classifier": RuleEntry(r.ClassifierGuidance, {"classifier": object, "labels": object, "base": str, "form": str}),
        "cfg++": RuleEntry(r.CFGPlusPlus, {}),
        "apg": RuleEntry(r.APG, {"eta": float, "norm_threshold": float, "momentum": float}),
        "apg-mix": RuleEntry(g.APGMix, {"apg_scale": float, "eta": float, "momentum": float, "norm_threshold": float,
                                        "start_step": int}),
        "autoguidance": RuleEntry(g.AutoGuidance, {"rescale": float}, ("weak",)),
        "cfg-zero*": RuleEntry(g.CFGZeroStar, {"zero_init_steps": int, "rescale": float}),
        "tcfg": RuleEntry(g.TangentialCFG, {"rescale": float}),
        "fdg": RuleEntry(g.FrequencyDecoupledGuidance, {"low_scale": float, "levels": int, "parallel_weight": float}),
        "pag": RuleEntry(lambda **o: g.PerturbedGuidance(perturbation="identity", **o), {"cfg_scale": float},
                         ("perturbed",)),
        "seg": RuleEntry(lambda **o: g.PerturbedGuidance(perturbation="blur", **o),
                         {"cfg_scale": float, "blur_sigma": float}, ("perturbed",)),
        "slg": RuleEntry(lambda **o: g.PerturbedGuidance(perturbation="skip", **o), {"cfg_scale": float},
                         ("perturbed",)),
    }


def canonical_rule(name: str) -> str:
    """The registry name of a rule (aliases: cfgpp, cfg-zero-star, autoguide, ...), or one clear line."""
    key = name.strip().lower()
    key = RULE_ALIASES.get(key, key)
    if key not in RULES:
        raise StorylabError(f"unknown guidance '{name}' (choose from {', '.join(RULES)})")
    return key


def rule_options(name: str) -> dict[str, type]:
    """The options rule ``name`` takes, name -> type."""
    return dict(_entries()[canonical_rule(name)].options)


def rule_networks(name: str) -> tuple[str, ...]:
    """The branches for which rule ``name`` needs a separate network (weak, perturbed)."""
    return _entries()[canonical_rule(name)].networks


def make_rule(name: str, **options: Any):
    """Build a guidance rule by name; an option the rule does not take is an error naming the ones it does."""
    key = canonical_rule(name)
    entry = _entries()[key]
    for option in options:
        if option not in entry.options:
            takes = ", ".join(entry.options) or "no options"
            raise StorylabError(f"guidance '{key}' does not take option '{option}' (it takes: {takes})")
    return entry.build(**options)


def _typed(key: str, text: str, kind: type, rule: str) -> Any:
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise StorylabError(f"guidance '{rule}': option {key} must be an integer, got '{text}'") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise StorylabError(f"guidance '{rule}': option {key} must be a number, got '{text}'") from None
        if math.isnan(value) or (math.isinf(value) and key != "blur_sigma"):
            raise StorylabError(f"guidance '{rule}': option {key} must be finite, got '{text}'")
        return value
    if kind is str:
        return text
    raise StorylabError(f"guidance '{rule}': option {key} cannot be given on the command line")


def parse_rule_options(rule: str, pairs: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """``["eta=0.5", "momentum=-0.5"]`` -> typed options of ``rule``; a bad, repeated or foreign key is one line."""
    key = canonical_rule(rule)
    allowed = rule_options(key)
    out: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not name or not value:
            raise StorylabError(f"--rule-option must look like KEY=VALUE, got '{pair}'")
        if name not in allowed:
            takes = ", ".join(k for k, t in allowed.items() if t in (int, float, str)) or "no options"
            raise StorylabError(f"guidance '{key}' does not take option '{name}' (it takes: {takes})")
        if name in out:
            raise StorylabError(f"--rule-option {name} is given twice")
        out[name] = _typed(name, value, allowed[name], key)
    return out
