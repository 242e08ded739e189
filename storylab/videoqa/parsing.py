"""Map a model's free-text reply to one of the five MCQA options (SFD / SF20K answer parsing).

SF20K reads the first letter of the upper-cased reply and the LongVA baseline reads "(1)".."(5)";
real replies are messier ("Answer: C.", "The answer is C) ...", the option's text, lower case,
markdown), so the rules below are tried from the most to the least explicit. A reply that matches
no rule, or matches two options equally, is *unparsed*: it counts as wrong and is counted
separately. Hand-written because the rules are specific to five lettered options. Replies to the
LongVA prompt style are read with that baseline's own strict regex instead (:func:`parse_longva_answer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from storylab.videoqa.data import LETTERS


@dataclass(frozen=True)
class ParsedAnswer:
    """The chosen option index (0-4) or None when unparsed, and the rule that decided it."""

    index: int | None
    rule: str

    @property
    def letter(self) -> str | None:
        """The chosen letter A-E, or None."""
        return None if self.index is None else LETTERS[self.index]


_CLEAN = re.compile(r"[*_`#]")
_ONLY_LETTER = re.compile(r"^\(?\[?([A-Ea-e])\]?\)?[.:]?$")
_ONLY_DIGIT = re.compile(r"^\(?([1-5])\)?[.:]?$")
_PAREN_DIGIT = re.compile(r"\(([1-5])\)")
_KEY = r"(?i:\b(?:answer|option|choice)\s*(?:is|would be|should be)?\s*[:\-]?\s*(?:option\s*)?)"
# "Answer: c." / "the answer is (a)" — any case when punctuation or the end follows the letter
_STATED = re.compile(_KEY + r"\(?\[?([A-Ea-e])(?=[).:,\]]|\s*$)")
# "The answer is C because ..." — upper case only, and "A" not followed by a lower-case word ("A man ...")
_STATED_UPPER = re.compile(_KEY + r"\(?(?:([B-E])\b|(A)\b(?!\s+[a-z]))")
_STATED_NUMBER = re.compile(r"(?i:\b(?:option|choice)\s*)([1-5])\b")
_LEADING = re.compile(r"^\(?([A-Ea-e])[).:\]]")
_LEADING_WORD = re.compile(r"^([B-E])\s")


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def _match_option_text(reply: str, options: Sequence[str]) -> int | None:
    """The option whose normalised text equals, or is uniquely contained in, the reply."""
    norm = _normalise(reply)
    if not norm:
        return None
    opts = [_normalise(o) for o in options]
    exact = [i for i, o in enumerate(opts) if o and o == norm]
    if len(exact) == 1:
        return exact[0]
    inside = [i for i, o in enumerate(opts) if o and f" {o} " in f" {norm} "]
    if len(inside) == 1:
        return inside[0]
    if len(inside) > 1:  # the longest contained option wins only if it contains the others
        longest = max(inside, key=lambda i: len(opts[i]))
        if all(opts[j] in opts[longest] for j in inside):
            return longest
        return None
    # a shortened reply that is part of exactly one option ("in the lighthouse")
    if len(norm.split()) >= 3:
        part = [i for i, o in enumerate(opts) if f" {norm} " in f" {o} "]
        if len(part) == 1:
            return part[0]
    return None


# SFD's LongVA evaluation (eval_longva.py): the first "(d)" with d in 1-5, anywhere in the reply
LONGVA_PATTERN = re.compile(r"\((\b[1-5]\b)\)")
PARSERS = {"storylab": "lenient", "sf20k": "lenient", "longva": "longva-strict"}


def parse_longva_answer(reply: str) -> ParsedAnswer:
    """The official strict reading of the LongVA baseline: the first ``(1)``..``(5)`` in the reply, else unparsed."""
    m = LONGVA_PATTERN.search(reply or "")
    return ParsedAnswer(int(m.group(1)) - 1, "longva (X)") if m else ParsedAnswer(None, "unparsed")


def parse_answer(reply: str, options: Sequence[str] = (), style: str = "storylab") -> ParsedAnswer:
    """Parse a reply the way its prompt style is scored: strict LongVA regex for ``longva``, else lenient."""
    if style == "longva":
        return parse_longva_answer(reply)
    return parse_mcqa_answer(reply, options)


def parse_mcqa_answer(reply: str, options: Sequence[str] = ()) -> ParsedAnswer:
    """Parse a reply into an option index: letter, "(3)", "Answer: C.", "The answer is C) ...", the option text."""
    text = _CLEAN.sub("", reply or "").strip()
    if not text:
        return ParsedAnswer(None, "empty")
    first_line = text.splitlines()[0].strip()
    if m := _ONLY_LETTER.match(first_line):
        return ParsedAnswer(LETTERS.index(m.group(1).upper()), "letter")
    if m := _ONLY_DIGIT.match(first_line):
        return ParsedAnswer(int(m.group(1)) - 1, "number")
    if m := _STATED.search(text):
        return ParsedAnswer(LETTERS.index(m.group(1).upper()), "stated")
    if m := _STATED_UPPER.search(text):
        return ParsedAnswer(LETTERS.index(m.group(1) or m.group(2)), "stated")
    if m := _STATED_NUMBER.search(text):
        return ParsedAnswer(int(m.group(1)) - 1, "number")
    if m := _LEADING.match(text):
        return ParsedAnswer(LETTERS.index(m.group(1).upper()), "leading letter")
    if m := _PAREN_DIGIT.search(text):
        return ParsedAnswer(int(m.group(1)) - 1, "number")
    if options:
        found = _match_option_text(text, options)
        if found is not None:
            return ParsedAnswer(found, "option text")
    if m := _LEADING_WORD.match(text):  # "C because ..." (not "A", which is also an article)
        return ParsedAnswer(LETTERS.index(m.group(1)), "leading letter")
    return ParsedAnswer(None, "unparsed")
