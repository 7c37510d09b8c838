"""A re-ask is caught however the customer answers it; a confirmation or clarification is not a re-ask.

The new-user example of issue 18: the customer gives an e-mail address (or phone number) at stage
``contact``; at ``identify`` the agent asks for it again. Whether the customer restates it, points back
to it ("I just gave it to you: ...") or complains, retention fails; the same transcripts through the real
redactor (masked and hashed values) must give the same verdicts.
"""

from __future__ import annotations

import pytest
from journeyscope.evaluators import StageVisit, Turn, VisitContext
from journeyscope.evaluators.retention import customer_agent_context_retention
from journeyscope.privacy import BUILTIN_TYPES, Action, PrivacyPolicy, Redactor

C, A = "customer", "agent"
EMAIL, PHONE = "jane.doe@example.com", "+44 20 7946 0958"

RAW = None
MASKED = PrivacyPolicy()
HASHED = PrivacyPolicy({t: Action.HASH for t in BUILTIN_TYPES}, key=b"k" * 32)
POLICIES = pytest.mark.parametrize("policy", [RAW, MASKED, HASHED], ids=["raw", "masked", "hashed"])

#: How a new user gives each fact at ``contact``: volunteered, or in answer to a question of another kind.
GIVEN = {
    "email": [[(C, f"Hi, I'm new here. My email is {EMAIL}")],
              [(A, "Welcome! How can we reach you?"), (C, f"You can write to {EMAIL}")]],
    "phone": [[(C, f"Hello, I just signed up, my number is {PHONE}")],
              [(A, "Welcome! How can we reach you?"), (C, f"Call me on {PHONE}")]],
}
ASK = {"email": "What's your email address?", "phone": "What's your phone number?"}
VALUE = {"email": EMAIL, "phone": PHONE}


def journey(policy: PrivacyPolicy | None, contact: list[tuple[str, str]],
            identify: list[tuple[str, str]]) -> VisitContext:
    """``contact`` then ``identify`` (on another channel), every text redacted by ``policy`` as the warehouse would."""
    redact = (lambda s: s) if policy is None else (lambda s: Redactor(policy).text(s)[0])

    def visit(stage: str, channel: str, lines: list[tuple[str, str]]) -> StageVisit:
        return StageVisit("j-new", stage, 1, tuple(Turn(r, redact(t), None, stage, channel) for r, t in lines),
                          channel=channel)

    return VisitContext(visit("identify", "whatsapp", identify), (visit("contact", "chat", contact),))


@POLICIES
@pytest.mark.parametrize("fact", ["email", "phone"])
@pytest.mark.parametrize("how", [0, 1], ids=["volunteered", "answered-other-question"])
@pytest.mark.parametrize("reply", ["{v}", "Sure, it's {v}", "I just gave it to you: {v}",
                                   "I already told you that!", "Didn't I just give you that?", "Okay"],
                         ids=["restates", "restates-in-words", "points-back", "complains", "complains-question",
                              "other-answer"])
def test_a_fact_given_earlier_and_asked_again_fails_retention(policy: PrivacyPolicy | None, fact: str, how: int,
                                                              reply: str) -> None:
    ctx = journey(policy, GIVEN[fact][how], [(A, ASK[fact]), (C, reply.format(v=VALUE[fact]))])
    r = customer_agent_context_retention(ctx)
    assert r.passed is False and r.label == "reasked", r.reason
    assert "contact" in r.reason and r.evidence["kind"] == fact
    if reply != "Okay":  # restated, pointed back or complained: the strongest evidence there is
        assert r.score is not None and r.score <= 0.1, r.reason


@POLICIES
@pytest.mark.parametrize("fact", ["email", "phone"])
def test_the_value_first_given_is_named_in_the_reason(policy: PrivacyPolicy | None, fact: str) -> None:
    r = customer_agent_context_retention(journey(policy, GIVEN[fact][0], [(A, ASK[fact]), (C, VALUE[fact])]))
    assert r.evidence["first_given"] == {"stage": "contact", "visit_position": 0, "turn": 0}
    if policy is None:
        assert VALUE[fact] in r.reason
    else:
        assert VALUE[fact] not in r.reason and f"[{fact.upper()}" in r.reason


@POLICIES
@pytest.mark.parametrize("ask", [
    "Just to confirm, is it {v}?",
    "Is {v} still the best way to reach you?",
    "Did you mean {v} or {v2}?",
    "Sorry, I didn't catch that. Could you spell your email address?",
    "Thanks! We'll send a code to your email. What's your date of birth?",
], ids=["confirm", "quote-back", "did-you-mean", "didnt-catch", "uses-it"])
def test_confirming_or_clarifying_a_given_value_is_not_a_reask(policy: PrivacyPolicy | None, ask: str) -> None:
    other = "jane.doe@example.org"
    ctx = journey(policy, GIVEN["email"][0], [(A, ask.format(v=EMAIL, v2=other)), (C, "Yes, that's right")])
    r = customer_agent_context_retention(ctx)
    assert r.passed is True and r.score == 1.0, r.reason


def test_a_fact_never_given_is_not_a_reask() -> None:
    ctx = journey(RAW, [(C, "Hi, I'm new here, I'd like to open an account.")],
                  [(A, ASK["email"]), (C, EMAIL), (A, ASK["phone"]), (C, PHONE)])
    r = customer_agent_context_retention(ctx)
    assert r.passed is True and r.score == 1.0, r.reason


def test_a_phone_number_is_not_taken_from_an_order_number() -> None:
    ctx = journey(RAW, [(C, "My order 88231774 never arrived")], [(A, ASK["phone"]), (C, PHONE)])
    assert customer_agent_context_retention(ctx).score == 1.0
