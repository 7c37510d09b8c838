"""Local engine on hand-written transcripts: each label, retention across stages, bad input, determinism.

The transcripts are written here, in the words of ordinary support chats, so that a failure names the
exact behaviour that broke. Accuracy on real labelled text is in ``test_evaluators_star.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeyscope.evaluators import EvalResult, StageVisit, Turn, VisitContext, evaluate_visit, registered
from journeyscope.evaluators.text import MAX_TURN_CHARS

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
BUILTINS = {
    "conversation_resolution", "customer_agent_context_retention", "customer_agent_conversation_quality",
    "friction_latency", "friction_repetition", "friction_channel_switch", "friction_hesitation", "friction_reentry",
}


def make_visit(stage: str, lines: list[tuple[str, str]], *, visit: int = 1, gap_s: float | None = 20.0,
               start: datetime = T0, channel: str | None = "chat", journey: str = "j1") -> StageVisit:
    """A visit from (role, text) pairs; ``gap_s=None`` leaves timestamps out."""
    turns = tuple(
        Turn(role, text, None if gap_s is None else start + timedelta(seconds=gap_s * i), stage, channel)
        for i, (role, text) in enumerate(lines)
    )
    return StageVisit(journey, stage, visit, turns, channel=channel)


def ctx_of(*visits: StageVisit) -> VisitContext:
    """The last visit, with the others as its history."""
    return VisitContext(visits[-1], tuple(visits[:-1]))


def run(ctx: VisitContext, name: str) -> EvalResult:
    (result,) = evaluate_visit(ctx, evaluators=[name])
    return result


C, A = "customer", "agent"


# --- registry -------------------------------------------------------------------------------------

def test_importing_the_package_registers_every_builtin() -> None:
    assert BUILTINS <= set(registered())
    for name in BUILTINS:
        assert registered()[name].version


def test_unknown_evaluator_or_engine_is_a_clear_error() -> None:
    ctx = ctx_of(make_visit("s", [(C, "hi")]))
    with pytest.raises(ValueError, match="unknown evaluator"):
        evaluate_visit(ctx, evaluators=["nope"])
    with pytest.raises(ValueError, match="unknown engine"):
        evaluate_visit(ctx, engine="quantum")


# --- resolution -----------------------------------------------------------------------------------

RESOLVED = [
    (C, "Hi, I'd like to book a table for two tonight at 7pm."),
    (A, "Sure. Could I have your name, please?"),
    (C, "Maria Lopez"),
    (A, "Thanks Maria, your table for two at 7 pm is confirmed. Your confirmation number is 4471."),
    (C, "Perfect, thank you!"),
    (A, "You're welcome, enjoy your dinner."),
]
FAILED = [
    (C, "I want to change my delivery address for order 55812."),
    (A, "Let me check that for you."),
    (A, "Unfortunately the order has already shipped, so the address can no longer be changed."),
    (C, "Oh. OK."),
]
ESCALATION = [
    (C, "My internet has been down for three days."),
    (A, "Have you tried restarting the router?"),
    (C, "Yes, five times. I want to speak to a human, please."),
    (A, "Let me see what I can do."),
]
LEFT = [
    (C, "Can you tell me why my card payment was declined yesterday?"),
    (A, "I can look into it. Which card did you use?"),
    (C, "The Visa ending 4421. Hello? Can you check it?"),
]


def test_confirmed_booking_is_resolved_and_reason_quotes_the_turn() -> None:
    r = run(ctx_of(make_visit("booking", RESOLVED)), "conversation_resolution")
    assert r.label == "resolved" and r.passed and r.score is not None and r.score >= 0.9
    assert "Turn 3" in r.reason and "confirmed" in r.reason
    assert r.evidence["turn"] == 3


def test_reported_failure_is_unresolved() -> None:
    r = run(ctx_of(make_visit("orders", FAILED)), "conversation_resolution")
    assert r.label == "unresolved" and not r.passed and r.score is not None and r.score <= 0.2
    assert "Turn 2" in r.reason


def test_escalation_request_is_unresolved() -> None:
    r = run(ctx_of(make_visit("support", ESCALATION)), "conversation_resolution")
    assert r.label == "unresolved" and r.score is not None and r.score < 0.5
    assert "hand-off" in r.reason and "Turn 2" in r.reason


def test_customer_left_with_question_unanswered_is_unresolved() -> None:
    r = run(ctx_of(make_visit("billing", LEFT)), "conversation_resolution")
    assert r.label == "unresolved" and r.score is not None and r.score < 0.5
    assert "Turn 2" in r.reason


def test_negated_success_is_a_failure() -> None:
    lines = [(C, "Please book flight 212 for me."), (A, "I'm sorry, your booking has not been confirmed.")]
    r = run(ctx_of(make_visit("flights", lines)), "conversation_resolution")
    assert r.label == "unresolved"


def test_offer_is_not_an_outcome() -> None:
    lines = [(C, "Table for 4 at Luigi's?"), (A, "Luigi's has a table at 8. Shall I book it for you?")]
    r = run(ctx_of(make_visit("booking", lines)), "conversation_resolution")
    assert r.label != "resolved"


def test_success_after_failure_ranks_between_clean_success_and_failure() -> None:
    lines = [(C, "Room at the Grand for May 3?"), (A, "Sorry, there are no rooms available at the Grand."),
             (C, "Try the Plaza then."), (A, "Done, your room at the Plaza is booked.")]
    mixed = run(ctx_of(make_visit("hotel", lines)), "conversation_resolution").score
    clean = run(ctx_of(make_visit("booking", RESOLVED)), "conversation_resolution").score
    failed = run(ctx_of(make_visit("orders", FAILED)), "conversation_resolution").score
    assert mixed is not None and clean is not None and failed is not None
    assert failed < mixed < clean


@pytest.mark.parametrize("answer, resolved", [
    ("Your current balance is $5,703.20.", True),
    ("Your order status is: shipped on May 3, tracking 1Z999.", True),
    ("Your total comes to 42.10 dollars.", True),
    ("Your balance is low, would you like to top up?", False),  # no value given: not an answer
    ("Could you tell me what your balance is?", False),
])
def test_the_information_asked_for_given_with_its_value_is_an_outcome(answer: str, resolved: bool) -> None:
    lines = [(C, "Hi, can you check something on my account for me?"), (A, "Sure, what is your account number?"),
             (C, "It's 778812."), (A, answer), (C, "Ok, now I'd like to book a table for tonight.")]
    r = run(ctx_of(make_visit("bank", lines)), "conversation_resolution")
    assert (r.label == "resolved") is resolved, r.reason


def test_small_talk_without_outcome_has_no_score() -> None:
    lines = [(C, "Lovely weather today."), (A, "It is indeed.")]
    r = run(ctx_of(make_visit("chat", lines)), "conversation_resolution")
    assert r.score is None and r.label == "no_outcome" and r.passed is None


def test_relief_or_an_aside_after_success_is_not_an_objection() -> None:
    # e-commerce: "I didn't want ..." and "wrong" in passing, not about the outcome
    lines = [(C, "Can you move my delivery to Saturday?"), (A, "Done, your delivery is now scheduled for Saturday."),
             (C, "Excellent! I didn't want to have to wait in all week for it."),
             (C, "Also, don't laugh if I get the next question wrong: how do returns work?")]
    r = run(ctx_of(make_visit("delivery", lines)), "conversation_resolution")
    assert r.label == "resolved" and r.passed


@pytest.mark.parametrize("objection", [
    "That's the wrong plan, I asked for unlimited data.",        # telecom
    "You got my account number wrong.",                          # bank
    "No, I said the blue one. I didn't ask for this.",           # e-commerce
])
def test_objection_to_the_outcome_makes_it_partial(objection: str) -> None:
    lines = [(C, "I'd like to switch plans."), (A, "All done, your plan has been changed."), (C, objection)]
    r = run(ctx_of(make_visit("plans", lines)), "conversation_resolution")
    assert r.label == "partial" and not r.passed and "objected" in r.reason


def test_success_claimed_after_a_tool_error_is_only_partial() -> None:
    # bank: the agent says the transfer went through, the payment API said it did not
    lines = [(C, "Please transfer 200 euros to my savings account."),
             ("tool", '{"status": "failed", "error": "insufficient funds"}'),
             (A, "Your transfer has been completed."), (C, "Thanks!")]
    r = run(ctx_of(make_visit("transfers", lines)), "conversation_resolution")
    assert r.label == "partial" and not r.passed
    assert r.evidence["tool_turn"] == 1 and "tool result" in r.reason


def test_a_retried_tool_call_clears_the_earlier_error() -> None:
    lines = [(C, "I want to return order 7731."), ("tool", '{"error": "timeout"}'),
             (A, "Sorry, that didn't go through, let me try again."), ("tool", '{"order": "7731", "rma": "R-55"}'),
             (A, "Your return has been approved, the label is in your inbox."), (C, "Great, thanks.")]
    r = run(ctx_of(make_visit("returns", lines)), "conversation_resolution")
    assert r.label == "resolved" and r.passed and "tool" not in r.reason


def test_tool_status_stands_in_when_the_agent_states_no_outcome() -> None:
    # e-commerce return: the agent only hands over a link, the returns API said approved
    ok = [(C, "I'd like to return these headphones."), ("tool", '{"rma": "R-1", "status": "approved"}'),
          (A, "Here is your prepaid shipping label: https://example.com/l/R-1"), (C, "Thank you!")]
    r = run(ctx_of(make_visit("returns", ok)), "conversation_resolution")
    assert r.label == "resolved" and r.passed and "tool reported success" in r.reason
    # telecom: the line test errored and the agent said nothing conclusive
    bad = [(C, "My landline has no dial tone."), ("tool", '{"line_test": "run", "status": "error"}'),
           (A, "Let me look at what the line test says."), (C, "ok")]
    r = run(ctx_of(make_visit("faults", bad)), "conversation_resolution")
    assert r.label == "unresolved" and not r.passed and "tool reported a failure" in r.reason


@pytest.mark.parametrize(("payload", "polarity"), [
    ('{"status": "declined"}', -1), ('{"success": false}', -1), ('{"status_code": 503}', -1),
    ('{"error": "card expired", "status_code": 200}', -1), ("Traceback (most recent call last):", -1),
    ('{"status": "shipped"}', 1), ('{"sent": true}', 1), ('{"error": null, "status": "ok"}', 1),
    ("{'ok': True}", 1), ('{"errors": []}', 0), ('{"order": "55812", "item": "kettle"}', 0),
    ("[{'Name': 'Hilton'}, {'RequestType': 'Book'}]", 0), ('{"status": "buffering"}', 0),
])
def test_tool_polarity_reads_status_shapes_not_arguments(payload: str, polarity: int) -> None:
    from journeyscope.evaluators.lexicon import tool_polarity
    assert tool_polarity(payload) == polarity


# --- retention ------------------------------------------------------------------------------------

def test_order_number_reasked_in_a_later_stage_is_named_with_where_it_was_given() -> None:
    first = make_visit("order-status", [
        (C, "Where is my parcel?"),
        (A, "Can you give me your order number, please?"),
        (C, "It's 88231."),
        (A, "Order 88231 is out for delivery today."),
        (C, "Great. I also want to return a jacket from it."),
    ])
    second = make_visit("returns", [
        (A, "Happy to help with the return. What is your order number?"),
        (C, "I already told you, 88231."),
        (A, "Thanks, I have started the return."),
    ], start=T0 + timedelta(minutes=5))
    r = run(ctx_of(first, second), "customer_agent_context_retention")
    assert r.label == "reasked" and not r.passed and r.score is not None and r.score <= 0.1
    assert "reference number" in r.reason and "order-status" in r.reason and "turn 2" in r.reason
    assert r.evidence["first_given"] == {"stage": "order-status", "visit_position": 0, "turn": 2}


def test_name_reasked_in_same_visit_and_restated() -> None:
    lines = [(A, "May I have your name, please?"), (C, "Priya Shah"), (A, "When would you like to come in?"),
             (C, "Friday at 3pm"), (A, "And could I get your full name, please?"), (C, "Priya Shah")]
    r = run(ctx_of(make_visit("appointments", lines)), "customer_agent_context_retention")
    assert r.label == "reasked" and r.score is not None and r.score < 0.2
    assert "name" in r.reason and "turn 1" in r.reason and "Turn 4" in r.reason


def test_clarifying_an_ambiguous_answer_is_not_a_failure() -> None:
    lines = [(A, "What day would you like the appointment?"), (C, "next Friday or the one after"),
             (A, "Just to confirm, did you mean Friday the 10th or Friday the 17th?"), (C, "The 10th"),
             (A, "Great, you're booked for Friday the 10th.")]
    r = run(ctx_of(make_visit("appointments", lines)), "customer_agent_context_retention")
    assert r.label == "retained" and r.score == 1.0 and r.passed
    assert r.evidence["clarifications"] == [2]


def test_new_value_after_a_failure_is_not_a_failure() -> None:
    lines = [(A, "For what time should I book?"), (C, "8pm"), (A, "Unfortunately 8 pm is fully booked."),
             (A, "For what time should I book instead?"), (C, "9pm then")]
    r = run(ctx_of(make_visit("booking", lines)), "customer_agent_context_retention")
    assert r.score is not None and r.passed and r.score >= 0.8


def test_task_parameters_do_not_leak_across_stages_but_identity_does() -> None:
    first = make_visit("restaurant", [(A, "How many people is the table for?"), (C, "4"),
                                      (A, "May I have your name, please?"), (C, "Tom Berg")])
    second = make_visit("party", [(A, "How many guests will you invite?"), (C, "30")])
    third = make_visit("taxi", [(A, "Could I get your name, please?"), (C, "Tom Berg")])
    assert run(ctx_of(first, second), "customer_agent_context_retention").label == "retained"
    r = run(ctx_of(first, second, third), "customer_agent_context_retention")
    assert r.label == "reasked" and "restaurant" in r.reason


def test_contradicting_a_given_fact_is_detected() -> None:
    lines = [(A, "What day would you like to travel?"), (C, "Tuesday"),
             (A, "Great, I have you travelling on Thursday."), (C, "No, I said Tuesday!")]
    r = run(ctx_of(make_visit("travel", lines)), "customer_agent_context_retention")
    assert r.label == "contradiction" and not r.passed
    assert "corrected" in r.reason and "Tuesday" in r.reason


def test_reoffering_a_rejected_option_is_a_contradiction() -> None:
    lines = [(C, "I need a checkup but I don't want Dr. Adams."), (A, "Which day suits you?"), (C, "Monday"),
             (A, "How about Dr. Adams on Monday at 10?")]
    r = run(ctx_of(make_visit("doctor", lines)), "customer_agent_context_retention")
    assert r.label == "contradiction" and "Dr. Adams" in r.reason


# --- quality and friction -------------------------------------------------------------------------

def test_quality_separates_a_good_visit_from_a_rude_looping_one() -> None:
    good = run(ctx_of(make_visit("booking", RESOLVED)), "customer_agent_conversation_quality")
    bad_lines = [(C, "Cancel my subscription."), (A, "I don't understand. Please rephrase."),
                 (C, "CANCEL. MY. SUBSCRIPTION. This is ridiculous."), (A, "I don't understand. Please rephrase."),
                 (C, "Useless."), (A, "Calm down, whatever.")]
    bad = run(ctx_of(make_visit("account", bad_lines)), "customer_agent_conversation_quality")
    assert good.score is not None and bad.score is not None
    assert good.label == "good" and good.passed
    assert bad.label == "poor" and not bad.passed and bad.score < good.score - 0.3


def test_latency_flags_slow_replies_and_silence() -> None:
    lines = [(C, "Hello?"), (A, "Hi, how can I help?"), (C, "My bill is wrong."), (A, "Let me check.")]
    fast = run(ctx_of(make_visit("billing", lines, gap_s=10)), "friction_latency")
    slow = run(ctx_of(make_visit("billing", lines, gap_s=700)), "friction_latency")
    assert fast.label == "none" and fast.score == 1.0
    assert slow.label == "silence" and slow.score is not None and slow.score < 0.5 and "700 s" in slow.reason


def test_missing_timestamps_give_no_latency_score() -> None:
    r = run(ctx_of(make_visit("billing", RESOLVED, gap_s=None)), "friction_latency")
    assert r.score is None and r.label == "no_evidence" and "timestamp" in r.reason


def test_repetition_hesitation_channel_switch_and_reentry() -> None:
    a = make_visit("billing", [(C, "My invoice for March shows a double charge"), (A, "Let me look.")])
    b = make_visit("billing", [(C, "Um, I'm not sure... my invoice for March shows a double charge"),
                               (A, "I see it.")], visit=2, channel="voice", start=T0 + timedelta(hours=1))
    ctx = ctx_of(a, make_visit("other", [(C, "hi"), (A, "hello")]), b)
    assert run(ctx, "friction_repetition").label == "repetition"
    assert run(ctx, "friction_hesitation").label == "hesitation"
    switch = run(ctx, "friction_channel_switch")
    assert switch.label == "switched" and "'chat' → 'voice'" in switch.reason
    reentry = run(ctx, "friction_reentry")
    assert reentry.label == "reentry" and "Visit 2" in reentry.reason and not run(ctx_of(a), "friction_reentry").evidence["earlier_positions"]


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lines, label", [
    ([], "no_evidence"),
    ([(A, "Hello, how can I help?"), (A, "Are you there?")], "no_evidence"),
    ([("tool", "{'status': 'ok'}"), (C, "   ")], "no_evidence"),
    ([(C, "Hola, quisiera reservar una mesa para cuatro personas esta noche en el restaurante del centro."),
      (A, "Claro, su mesa para cuatro está confirmada para esta noche a las ocho en punto.")], "unsupported_language"),
])
def test_bad_input_gives_a_defined_result_not_a_score(lines: list[tuple[str, str]], label: str) -> None:
    ctx = ctx_of(make_visit("x", lines))
    for r in evaluate_visit(ctx):
        assert r.error is None
        if r.evaluator in ("conversation_resolution", "customer_agent_context_retention",
                           "customer_agent_conversation_quality"):
            assert r.score is None and r.passed is None and r.label == label and r.reason


def test_huge_turn_is_truncated_and_the_reason_says_so() -> None:
    huge = "Here is my full error log: " + "the request to the server failed with code 500 and " * 5_000
    lines = [(C, huge), (A, "Thanks. Your ticket has been submitted and an engineer will contact you.")]
    r = run(ctx_of(make_visit("support", lines)), "conversation_resolution")
    assert r.label == "resolved" and f"truncated to {MAX_TURN_CHARS} characters" in r.reason
    assert r.evidence["truncated_turns"] == [0]


def test_results_are_deterministic_and_json_friendly() -> None:
    ctx = ctx_of(make_visit("booking", RESOLVED))
    assert evaluate_visit(ctx) == evaluate_visit(ctx)
    for r in evaluate_visit(ctx):
        assert r.version and r.reason


_roles = st.sampled_from(["customer", "agent", "tool", "system", "", "CUSTOMER"])
_texts = st.text(max_size=300) | st.sampled_from(["?", "thanks", "booked!", "not available", "my name is Bo", ""])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(_roles, _texts), max_size=8), min_size=1, max_size=3),
       st.booleans())
def test_any_input_gives_bounded_scores_and_never_raises(visits: list[list[tuple[str, str]]], stamps: bool) -> None:
    built = [make_visit(f"s{i % 2}", v, visit=i + 1, gap_s=30 if stamps else None) for i, v in enumerate(visits)]
    for r in evaluate_visit(ctx_of(*built)):
        assert r.error is None, r
        assert r.score is None or 0.0 <= r.score <= 1.0
        assert (r.score is None) == (r.passed is None)
        assert isinstance(r.reason, str) and r.reason
