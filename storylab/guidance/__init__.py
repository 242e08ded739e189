"""Foundation: guidance rules (CFG, negative, classifier, CFG++, APG, rescale) and weight schedules w(t)."""

from storylab.guidance.guided import Guided, concat_conditions
from storylab.guidance.rules import APG, CFG, RULES, CFGPlusPlus, ClassifierGuidance, GuidanceRule, NoGuidance, make_rule
from storylab.guidance.schedules import SHAPES, SPEC_HELP, WeightSchedule, check_scale, parse_schedule, sampling_progress

__all__ = ["APG", "CFG", "CFGPlusPlus", "ClassifierGuidance", "Guided", "GuidanceRule", "NoGuidance", "RULES", "SHAPES",
           "SPEC_HELP", "WeightSchedule", "check_scale", "concat_conditions", "make_rule", "parse_schedule",
           "sampling_progress"]
