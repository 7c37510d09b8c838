"""Evaluators on redacted transcripts: hashing keeps "the customer repeated the same value" visible."""

from __future__ import annotations

import re


from journeyscope.evaluators import StageVisit, Turn, VisitContext
from journeyscope.evaluators.retention import customer_agent_context_retention
from journeyscope.privacy import BUILTIN_TYPES, Action, CustomPattern, PrivacyPolicy, Redactor

ORDER = CustomPattern("order_number", re.compile(r"\bORD-\d{6}\b"), Action.HASH)
HASHED = PrivacyPolicy({t: Action.HASH for t in BUILTIN_TYPES}, patterns=(ORDER,), key=b"k" * 32)
MASKED = PrivacyPolicy(patterns=(CustomPattern("order_number", ORDER.regex, Action.MASK),))


def _journey(policy: PrivacyPolicy, later_reply: str, ask: str = "What is your email address?"
             ) -> VisitContext:
    redactor = Redactor(policy)

    def visit(stage: str, turns: list[tuple[str, str]]) -> StageVisit:
        return StageVisit("j-1", stage, 1, tuple(Turn(role, redactor.text(text)[0]) for role, text in turns))

    first = visit("sign-up", [("agent", "Hi! What is your email address?"),
                              ("customer", "jane.doe@example.com"),
                              ("agent", "And your order number?"), ("customer", "It's ORD-558812")])
    later = visit("delivery", [("agent", f"Thanks for waiting. {ask}"), ("customer", later_reply)])
    assert "example.com" not in repr(first) + repr(later) and "558812" not in repr(first) + repr(later)
    return VisitContext(later, (first,))


def test_a_reasked_email_is_caught_on_a_hashed_transcript():
    result = customer_agent_context_retention(_journey(HASHED, "As I said, Jane.Doe@example.com"))
    assert not result.passed and result.label == "reasked"
    assert "[EMAIL:" in result.reason and "restated" in result.reason


def test_a_reasked_order_number_is_caught_on_a_hashed_transcript():
    result = customer_agent_context_retention(
        _journey(HASHED, "ORD-558812, again", ask="What is your order number?"))
    assert not result.passed and result.label == "reasked"
    assert result.evidence["kind"] == "reference_id" and "[ORDER_NUMBER:" in str(result.evidence["value"])


def test_a_different_value_gets_a_different_token():
    same = _journey(HASHED, "jane.doe@example.com").visit.turns[1].text
    other = _journey(HASHED, "jd.work@example.org").visit.turns[1].text
    assert same.startswith("[EMAIL:") and other.startswith("[EMAIL:") and same != other


def test_a_reasked_email_is_caught_on_a_masked_transcript():
    result = customer_agent_context_retention(_journey(MASKED, "As I said, jane.doe@example.com"))
    assert not result.passed


def test_a_new_hashed_value_is_not_taken_for_a_restated_one():
    same = customer_agent_context_retention(_journey(HASHED, "jane.doe@example.com"))
    new = customer_agent_context_retention(_journey(HASHED, "jd.work@example.org"))
    assert same.score is not None and new.score is not None
    assert new.score > same.score  # the customer gave a different address: not a restatement
