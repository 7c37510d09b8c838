"""Conversation quality tells a satisfied customer from one who is not, one signal at a time.

Each test starts from the same resolved booking and adds one thing a dissatisfied customer goes
through (frustration, a repeated ask, a dead end, an agent error, a slow reply), so a failure names
the signal that broke. Accuracy on real labelled text is in ``benchmarks/star_accuracy.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from journeyscope.evaluators import StageVisit, Turn, VisitContext
from journeyscope.evaluators.quality import customer_agent_conversation_quality as quality
from journeyscope.evaluators.sentiment import NEGATIVE, negativity

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
C, A = "customer", "agent"

OPEN = [(C, "Hi, I'd like to book a table for two tonight at 7pm."), (A, "Sure, under what name?"), (C, "Maria Lopez")]
DONE = [(A, "Thanks Maria, your table for two at 7 pm is confirmed."), (C, "Thank you!")]


def score(lines: list[tuple[str, str]], gaps: list[float] | None = None) -> tuple[float, dict[str, object], str]:
    gaps = gaps or [20.0] * len(lines)
    stamps = [T0 + timedelta(seconds=sum(gaps[:i])) for i in range(len(lines))]
    visit = StageVisit("j", "booking", 1, tuple(Turn(r, t, ts, "booking") for (r, t), ts in zip(lines, stamps)))
    r = quality(VisitContext(visit))
    assert r.score is not None
    return r.score, r.evidence, r.reason


def test_a_smooth_resolved_visit_closed_with_thanks_is_good() -> None:
    s, ev, reason = score(OPEN + DONE)
    assert s >= 0.9 and ev["closed_with_thanks"] is True and "thanks" in reason


@pytest.mark.parametrize("middle, signal", [
    ([(A, "Is that for tonight?"), (C, "Are you even listening? I said tonight.")], "frustration"),
    ([(A, "Which day?"), (C, "That's not what I asked, I said tonight at 7.")], "frustration"),
    ([(A, "Which restaurant?"), (C, "Why is this so slow? You are hopeless.")], "frustration"),
    ([(A, "Noted."), (C, "Can you book a table for two tonight at 7pm?")], "repeated_ask"),
    ([(A, "I'm sorry, I don't understand what you mean."), (C, "A table for two, tonight, 7pm.")], "dead_end"),
    ([(A, "Sorry, an error occurred on my side, one moment."), (C, "Ok.")], "agent_error"),
    ([(A, "There are no tables left at 7 pm. Would 8 pm suit you?"), (C, "Ok.")], "agent_error"),
    ([(C, "Also, what's their phone number?"), (A, "It's a lovely place with great reviews.")], "unanswered"),
    ([(C, "Where is it?"), (A, "It's a lovely place."), (C, "Sure, and the address?"),
      (A, "It is at 12 Mill Road.")], "repeated_ask"),
    ([(A, "I can offer the terrace at 7 pm."), (C, "That doesn't work for me, do you have any other options?")],
     "rejected"),
], ids=["directed-annoyance", "not-what-i-asked", "negative-about-the-agent", "asks-again", "dead-end", "agent-error",
        "agent-failure", "unanswered-request", "asks-again-for-the-same-information", "offer-turned-down"])
def test_each_sign_of_dissatisfaction_lowers_the_score_and_is_named(middle: list[tuple[str, str]],
                                                                   signal: str) -> None:
    smooth, _, _ = score(OPEN + DONE)
    s, ev, reason = score(OPEN + middle + DONE)
    assert s < smooth - 0.05, reason
    assert ev[f"{signal}_turns"], ev
    assert any(f"turn {len(OPEN) + i}" in reason for i in range(len(middle))), reason


def test_negative_words_about_the_situation_are_not_frustration_with_the_agent() -> None:
    assert negativity("The debit card, someone stole it from my bag and I'm so upset.") <= NEGATIVE
    _, ev, _ = score([(C, "My card was stolen and I hate this, can you block it?"), (A, "Which card?"),
                      (C, "The debit card, someone stole it from my bag and I'm so upset."),
                      (A, "Done, your debit card is blocked."), (C, "Thanks!")])
    assert "frustration_turns" not in ev


@pytest.mark.parametrize(("said", "annoyed"), [("I'm in a hurry, can you do it now?", True),
                                               ("Hurry up please", True),
                                               ("No hurry, take your time.", False),
                                               ("I'm not in a hurry, whenever you can.", False),
                                               ("Don't hurry, I can wait.", False)])
def test_impatience_is_annoyance_and_patience_is_not(said: str, annoyed: bool) -> None:
    _, ev, _ = score([(C, "Can you move my booking to Friday?"), (A, "Which booking?"), (C, said),
                      (A, "Done, your booking is on Friday."), (C, "Great.")])
    assert ("frustration_turns" in ev) is annoyed, ev


def test_a_slow_reply_costs() -> None:
    lines = OPEN + DONE
    fast, _, _ = score(lines)
    slow, ev, reason = score(lines, gaps=[20.0, 20.0, 600.0, 20.0, 20.0])
    assert slow < fast and ev["slow_turns"] == [3] and "slow" in reason


def test_an_unresolved_visit_with_a_complaint_is_poor() -> None:
    s, _, reason = score(OPEN + [(A, "Unfortunately we are fully booked tonight, sorry."),
                                 (C, "This is ridiculous, I booked here last week.")])
    assert s < 0.5 and "unresolved" in reason


def test_negativity_is_vader_negative_part() -> None:
    assert negativity("for 7 pm, please") == 0.0
    assert negativity("Thanks, that's great!") == 0.0
    assert negativity("This is useless and you are not helpful") < -0.5
    assert negativity("not helpful") < 0  # a negation of a positive word: VADER runs, not the shortcut


def test_a_request_answered_with_its_value_is_not_unanswered() -> None:
    for question, answer in [("Also, what's their phone number?", "Sure, it's 01223 356354."),
                             ("Could you send me the confirmation number?", "Of course: it is XK42P7."),
                             ("How much will it cost?", "It comes to $42.50 for two."),
                             ("What's their e-mail address?", "It's [EMAIL:3fa9c1d2e4b5].")]:
        _, ev, reason = score(OPEN + [(C, question), (A, answer)] + DONE)
        assert "unanswered_turns" not in ev, (question, reason)
        assert "repeated_ask_turns" not in ev


def test_a_finding_near_the_end_costs_more_than_the_same_one_early() -> None:
    annoyed = (C, "Are you even listening? Tonight, I said.")
    early, ev_early, _ = score([OPEN[0], (A, "Which day?"), annoyed, (A, "Under what name?"), (C, "Maria Lopez"),
                                (A, "Noted, one moment."), (C, "Ok."), *DONE])
    late, ev_late, _ = score([*OPEN, (A, "Noted, one moment."), (C, "Ok."), (A, "Which day?"), annoyed, *DONE])
    assert ev_early["frustration_turns"] and ev_late["frustration_turns"]
    assert late < early


def test_a_customer_who_leaves_frustrated_costs_more_than_one_who_calmed_down() -> None:
    calmed, _, _ = score(OPEN + [(A, "Which day?"), (C, "Are you even listening? Tonight."),
                                 (A, "Sorry, your table for two at 7 pm tonight is confirmed."), (C, "Ok, bye.")])
    left, _, reason = score(OPEN + [(A, "Which day?"), (C, "Tonight."),
                                    (A, "Sorry, your table for two at 7 pm tonight is confirmed."),
                                    (C, "Are you even listening? I said tonight.")])
    assert left < calmed, reason


# Two information-and-booking dialogues of the kind human raters score for satisfaction: the same request, one
# served, one where the agent fails, leaves a question unanswered and the customer has to ask again.
SERVED = [(C, "I'm looking for a cheap hotel in the north, with free parking."),
          (A, "The Acorn Guest House is cheap, in the north and has free parking. Shall I book it?"),
          (C, "Yes, for 2 people, 3 nights from Friday. What's their phone number?"),
          (A, "Booked! Your reference number is 7GAWK763. Their phone number is 01223 353888."),
          (C, "Great, thank you, that's all I need.")]
NOT_SERVED = [(C, "I'm looking for a cheap hotel in the north, with free parking."),
              (A, "I'm sorry, there are no hotels matching your request."),
              (C, "What about a guest house? And what's the price range?"),
              (A, "The Acorn Guest House is in the north. Would you like me to book it?"),
              (C, "Can you tell me the price range first?"),
              (A, "Sure, how many people will be staying?"),
              (C, "That's not what I asked. Never mind, goodbye.")]


def test_a_served_dialogue_outscores_one_with_a_failure_an_unanswered_question_and_a_repeated_ask() -> None:
    good, _, _ = score(SERVED)
    bad, ev, reason = score(NOT_SERVED)
    assert ev["unanswered_turns"] == [2, 4] and ev["repeated_ask_turns"] == [4] and ev["agent_error_turns"] == [1]
    assert ev["frustration_turns"] == [6]
    assert good >= 0.8 and bad < 0.5 and good - bad > 0.4, reason


@pytest.mark.parametrize("closing", [
    "Thanks for nothing.",
    "Well, thank you so much for wasting my time.",
    "Thanks a lot for not listening.",
    "Thank you for being so useless.",
    "Thanks, but that's not what I asked for.",
    "Thank you. You have been useless.",
])
def test_a_thanks_taken_back_or_followed_by_a_complaint_is_frustration_not_gratitude(closing: str) -> None:
    failed = [(A, "Unfortunately we have no tables left tonight.")]
    s, ev, _ = score(OPEN + failed + [(C, closing)])
    polite, polite_ev, _ = score(OPEN + failed + [(C, "Ok, thank you anyway.")])
    assert ev.get("frustration_turns") == [len(OPEN) + 1], ev
    assert ev["closed_with_thanks"] is False
    assert s < polite - 0.1 and polite_ev["closed_with_thanks"] is True and "frustration_turns" not in polite_ev


@pytest.mark.parametrize("closing", [
    "That took a while, ugh, but thank you, all good now!",  # a complaint forgiven by a later thanks
    "Thank you!!!",  # emphatic, not annoyed
    "Thanks for not charging me extra for the terrace.",  # "thanks for not ..." meant
])
def test_a_meant_thanks_is_gratitude(closing: str) -> None:
    _, ev, _ = score(OPEN + [DONE[0], (C, closing)])
    assert "frustration_turns" not in ev and ev["closed_with_thanks"] is True, ev
