"""What a customer asks to be told and whether the agent told them (:mod:`journeyscope.evaluators.requests`)."""

from __future__ import annotations

import pytest
from journeyscope.evaluators import StageVisit, Turn
from journeyscope.evaluators.requests import answers, asked_kinds, requests
from journeyscope.evaluators.text import read_visit


@pytest.mark.parametrize("text, kinds", [
    ("Could I get the phone number please?", {"phone"}),
    ("What's their e-mail address?", {"email"}),
    ("Great. How much does it cost, and where is it?", {"price", "address"}),
    ("When does the train leave?", {"time"}),
    ("Can you give me the reference number?", {"reference"}),
    ("How long is the trip?", {"duration"}),
    ("I need a table for two at 7pm.", set()),  # a task, not a question for information
    ("It must cost no more than 80 dollars, can you search again?", set()),  # a price stated, not asked for
    ("My phone number is 555 123 4567.", set()),
])
def test_asked_kinds(text: str, kinds: set[str]) -> None:
    assert asked_kinds(text) == kinds


@pytest.mark.parametrize("text, kind, given", [
    ("You can reach them on 01223 356354.", "phone", True),
    ("Their number is [PHONE:3fa9c1d2e4b5].", "phone", True),
    ("They are a lovely place to eat.", "phone", False),
    ("It's at 14 King Street.", "address", True),
    ("The total is £24.50.", "price", True),
    ("It departs at 17:15.", "time", True),
    ("It should arrive in 7 minutes.", "time", True),
    ("Your reference is 8GH2KL1.", "reference", True),
    ("I'm afraid I can't find that.", "reference", False),
])
def test_answers(text: str, kind: str, given: bool) -> None:
    assert answers(text, kind) is given


def _lines(*turns: tuple[str, str]):
    return read_visit(StageVisit("j", "s", 1, tuple(Turn(r, t) for r, t in turns))).lines


def test_a_request_is_judged_only_once_the_agent_replied() -> None:
    [waiting] = requests(_lines(("customer", "Hi"), ("agent", "Hello!"), ("customer", "What's the address?")))
    assert not waiting.replied and not waiting.unanswered
    [late] = requests(_lines(("customer", "What's the address?"), ("agent", "One moment."),
                             ("agent", "It is 3 Mill Road.")))
    assert late.replied and not late.unanswered
    first, again = requests(_lines(("customer", "What's the address?"), ("agent", "A lovely spot."),
                                   ("customer", "And the address?"), ("agent", "Sorry, I don't have it.")))
    assert first.unanswered == {"address"} and first.asked_again and again.unanswered == {"address"}
