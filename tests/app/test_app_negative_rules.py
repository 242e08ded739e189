"""The app's guidance tab offers every rule of RULES but classifier; those with a negative branch
(negative, negative3) draw with the tab's negative class and refuse, in one line, to draw without one."""

import numpy as np
import pytest

from storylab.app import callbacks as cb
from storylab.guidance import RULES, make_rule
from storylab.images.commands.panel import guidance_grid

NEGATIVE_RULES = [r for r in RULES if r != "classifier" and make_rule(r).needs_negative]


@pytest.mark.parametrize("rule", NEGATIVE_RULES)
def test_a_negative_rule_draws_in_the_guidance_tab(rule):
    status, grid_a, grid_b, table = cb.guidance_generate("digits", rule, 3.0, "constant", "linear", "ddim", 2, 0, 1, 1)
    assert not status.startswith("error:"), status
    assert grid_a.shape == grid_b.shape and list(table["samples"]) == [10, 10]
    # every branch in one batched call: three network evaluations a step for negative3, two for negative
    branches = len(make_rule(rule).branches(2.0))
    assert list(table["NFE per sample"]) == [2 * branches, 1 + branches]  # linear starts at scale 1
    other = guidance_grid("digits", rule, 3.0, "constant", "ddim", 2, 0, 1, negative_class=7)
    same = guidance_grid("digits", rule, 3.0, "constant", "ddim", 2, 0, 1, negative_class=1)
    assert not np.array_equal(other.samples, same.samples)  # the negative class acts


@pytest.mark.parametrize("rule", NEGATIVE_RULES)
def test_without_a_negative_class_it_is_one_line(rule):
    status, *outputs = cb.guidance_generate("digits", rule, 3.0, "constant", "linear", "ddim", 2, 0, 1)
    assert status == f"error: guidance '{rule}' steers away from a class: give a negative class between 0 and 9"
    assert outputs == [None, None, None]
