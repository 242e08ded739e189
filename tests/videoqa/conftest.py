"""Fixtures of the Video QA tests (helpers live in videoqa_helpers.py)."""

from videoqa_helpers import tiny_set  # noqa: F401 - re-exported fixture
