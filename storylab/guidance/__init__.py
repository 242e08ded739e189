"""Foundation: guidance rules (CFG, negative, classifier, CFG++, APG, AutoGuidance, CFG-Zero*, TCFG, FDG, APG-Mix, PAG/SEG/SLG) and weight schedules w(t).

Names are loaded lazily (PEP 562) so that the CLI can read :data:`SPEC_HELP` and :data:`RULES`
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from storylab.guidance.names import RULES, SPEC_HELP

_LAZY = {
    "Guided": "guided", "concat_conditions": "guided",
    "APG": "rules", "CFG": "rules", "CFGPlusPlus": "rules", "ClassifierGuidance": "rules", "GuidanceRule": "rules",
    "NegativeCFG": "rules", "NoGuidance": "rules", "make_rule": "registry", "parse_rule_options": "registry",
    "AutoGuidance": "guiders", "CFGZeroStar": "guiders", "TangentialCFG": "guiders", "FrequencyDecoupledGuidance": "guiders",
    "APGMix": "guiders", "PerturbedGuidance": "guiders", "BranchNetwork": "guided",
    "SCHEDULE_VERSION": "names", "SHAPES": "schedules", "WeightSchedule": "schedules", "check_scale": "schedules", "parse_schedule": "schedules",
    "sampling_progress": "schedules",
}

__all__ = ["RULES", "SPEC_HELP", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"storylab.guidance.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'storylab.guidance' has no attribute '{name}'")
