"""MCQA answer parsing: letters, numbers, stated answers, option text; unparsable replies stay unparsed."""

from __future__ import annotations

import pytest

from storylab.videoqa.parsing import parse_mcqa_answer

OPTIONS = ("He loses his passport.", "He is pickpocketed in a market.", "He gets stuck in traffic and walks.",
           "He takes the wrong bus.", "His hotel booking is cancelled.")


@pytest.mark.parametrize("reply, letter", [
    ("C", "C"), ("c", "C"), ("(3)", "C"), ("3", "C"), ("Answer: C.", "C"), ("answer: c", "C"),
    ("The answer is C) He gets stuck in traffic and walks.", "C"), ("**D**", "D"), ("(B)", "B"),
    ("I think the answer is E because the booking vanished.", "E"), ("Option 4", "D"),
    ("A) He loses his passport.", "A"), ("The answer is A.", "A"),
    ("he gets stuck in traffic and walks", "C"), ("He takes the wrong bus.", "D"),
    ("He is pickpocketed in a market", "B"), ("E because the hotel lost it", "E"),
])
def test_parses(reply, letter):
    assert parse_mcqa_answer(reply, OPTIONS).letter == letter


@pytest.mark.parametrize("reply", ["", "   ", "I do not know.", "A man walks into a bar.", "The answer is a mystery.",
                                   "(7)", "F"])
def test_unparsable_replies_stay_unparsed(reply):
    assert parse_mcqa_answer(reply, OPTIONS).index is None


def test_ambiguous_option_text_is_unparsed():
    assert parse_mcqa_answer("He loses his passport, then he takes the wrong bus.", OPTIONS).index is None
