"""Outcome phrases the resolution evaluator reads: a conflict is not a completion, and a completion
stated with its own verb ("created", "installed", "is active", "Payment approved.") is one.

The demo's onboarding sign-up showed why: "that email is already registered to another account" read
as a success ("is ... registered") and "your account is created" as no outcome, so the evaluator ran
against the customers' CSAT at that stage.
"""

from __future__ import annotations

import pytest
from journeyscope.evaluators import StageVisit, Turn, VisitContext
from journeyscope.evaluators.lexicon import outcome_polarity
from journeyscope.evaluators.resolution import conversation_resolution


@pytest.mark.parametrize("text, polarity", [
    ("Sorry, that email is already registered to another account.", -1),
    ("That username is already taken.", -1),
    ("This phone number is already in use.", -1),
    ("You're already registered, so you're all set.", 1),  # "already" alone is no conflict
    ("Your account is created, Anna. Next we'll set up payment.", 1),
    ("Great, the app is installed and linked to your account.", 1),
    ("Payment approved. Your subscription is active.", 1),
    ("Booking confirmed!", 1),
    ("Is your account active?", 0),  # a question states no outcome
    ("Your booking has been made.", 1),
    ("Booked! Your reference number is 7GAWK763.", 1),
])
def test_outcome_polarity(text: str, polarity: int) -> None:
    assert outcome_polarity(text) == polarity


def _visit(*turns: tuple[str, str]) -> VisitContext:
    return VisitContext(StageVisit("j", "sign-up", 1, tuple(Turn(r, t) for r, t in turns)))


def test_a_sign_up_refused_for_a_taken_address_is_unresolved_and_one_completed_is_resolved() -> None:
    opening = [("customer", "Hi, I want to sign up."), ("agent", "Which email address should we use?"),
               ("customer", "jane@example.com")]
    refused = conversation_resolution(_visit(*opening, ("agent", "Sorry, that email is already registered to "
                                                                  "another account."), ("customer", "Never mind.")))
    done = conversation_resolution(_visit(*opening, ("agent", "Your account is created, Jane."), ("customer", "Great.")))
    assert refused.label == "unresolved" and refused.passed is False
    assert done.label == "resolved" and done.score is not None and refused.score is not None
    assert done.score > refused.score


def test_a_closing_thank_you_is_not_a_request_left_unanswered() -> None:
    """"That's all I need" names a need but asks for nothing; a thank-you with a question still asks."""
    answered = [("customer", "What's their phone number?"), ("agent", "It's 01223 353888.")]
    closed = conversation_resolution(_visit(*answered, ("customer", "Great, thank you, that's all I need.")))
    asked = conversation_resolution(_visit(*answered, ("customer", "Thanks. Can you also book me a taxi?")))
    assert closed.label == "resolved" and asked.label == "unresolved"
