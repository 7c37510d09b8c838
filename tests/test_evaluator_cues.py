"""The evaluators' gated patterns (:class:`journeyscope.evaluators.text.Cue`) answer exactly as their regexes do.

A cue skips its regex on text that contains none of its needles, so a needle set that misses what one
alternative of the pattern can match would silently change scores. Checked two ways: on every turn of the
STAR development dialogues (as written and lower-cased, whole and sentence by sentence), and on text made
to match each alternative, so an alternative the corpus never exercises is covered too.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from journeyscope.evaluators import facts, lexicon, quality, retention
from journeyscope.evaluators.text import Cue, sentences

STAR = Path(__file__).resolve().parent / "data" / "star" / "dev.jsonl.gz"

def _cues() -> dict[str, Cue]:
    """Every cue of the evaluators, named where it is defined (not where it is imported)."""
    found: dict[int, tuple[str, Cue]] = {}
    for module in (lexicon, facts, quality, retention):
        for name, value in vars(module).items():
            if isinstance(value, Cue):
                found.setdefault(id(value), (f"{module.__name__.rsplit('.', 1)[1]}.{name}", value))
    return dict(found.values())


CUES = _cues()

#: For each cue, text that one alternative of its pattern matches (every alternative at least once).
MATCHING = {
    "lexicon.NEGATED_DONE": ["it has not been booked", "we never processed it", "it is n't sent"],
    "lexicon.CONFUSED": ["i don't understand", "i did not quite follow", "i didn't get that", "not sure what you mean",
                         "could you rephrase", "can you repeat", "i'm only able to help you with bookings",
                         "i can only help with", "i'm not able to help", "i can't help", "outside of my scope"],
    "lexicon.ESCALATION": ["can i speak to a human", "talk with your manager", "chat to someone", "a real person",
                           "a live agent", "a human being", "transferring you now", "i will escalate this",
                           "let me connect you with", "i'll hand you over", "hand off", "call the support line",
                           "call your helpline", "i will file a complaint"],
    "lexicon.THANKS": ["thank you", "thanks", "thx", "ty", "i appreciate it", "perfect", "awesome", "great",
                       "wonderful", "excellent", "that's all", "thats all", "that is all", "goodbye", "bye",
                       "that works", "sounds good"],
    "lexicon.OBJECTION": ["that's not what i asked", "incorrect", "a mistake", "i didn't ask for this",
                          "i didnt order that", "i didn't say that", "i didn't want it", "useless", "terrible",
                          "unacceptable", "that's not right", "thats not it", "no, i said tuesday", "no i wanted two"],
    "lexicon.ANNOYED_WORDS": ["you're not listening", "you aren't listening", "are you even listening", "useless",
                              "stupid", "idiot", "dumb", "ridiculous", "annoying", "frustrating", "a waste of my time",
                              "terrible", "awful", "horrible", "incompetent", "wtf", "omg", "ffuuck", "shit", "damn",
                              "crap", "hell", "bitch", "ughhh", "seriously", "are you even a bot", "are you kidding",
                              "what is wrong with you", "forget it", "nevermind", "never mind", "i give up",
                              "unacceptable", "pathetic", "hurry", "just do it", "not what i", "why do you"],
    "lexicon.ANNOYED": ["what??", "no!!!", "useless"],
    "lexicon.GRATITUDE": ["thank you", "thanks", "thx", "i appreciate"],
    "lexicon.THANKLESS": ["thanks for nothing", "thank you for not listening", "thanks a lot for wasting my time",
                          "thanks for being so useless", "thanks for making this worse"],
    "lexicon.REJECTS": ["anything else", "something other", "any other options", "other times", "another date",
                        "that doesn't work", "doesnt suit", "does not work", "that won't do", "wouldn't work",
                        "will not suit", "not interested", "not quite", "that's too expensive", "it was very late",
                        "i'd rather not", "id rather not"],
    "lexicon.RUDE": ["shut up", "calm down", "whatever", "not my problem", "stupid", "idiot", "dumb", "fuuck",
                     "shit", "damn", "your fault", "i don't care", "i dont care"],
    "facts._ALREADY": ["already", "as i said", "as i mentioned", "like i told", "i said", "i just said",
                       "i told you", "i gave", "i mentioned", "told you", "said before", "said earlier", "again?so"],
    "facts._CHANGE": ["actually", "instead", "change", "changed", "rather", "wait", "on second thought", "make it 5",
                      "make that two", "switch", "correction", "typo", "i meant", "sorry, i meant", "different",
                      "another", "other"],
    "facts._CORRECT": ["that's not right", "thats not correct", "that's not what", "that's wrong", "thats incorrect",
                       "i said tuesday", "i asked for two", "i meant", "not what i said", "not what i asked",
                       "you got it wrong", "you got me wrong", "no, it's tuesday", "nope it was 5", "no i said",
                       "no, i asked", "no i meant", "no, i wanted"],
    "facts._WEEKDAY": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today",
                       "tomorrow", "tonight"],
    "facts._TIME": ["7pm", "7 pm", "10:30am", "7 a.m.so", "9 p.m.ok", "5 o'clock", "5 oclock", "noon", "midnight"],
    "facts._COUNT": ["4 people", "two persons", "3 guests", "2 adults", "three kids", "two children", "four of us",
                     "6 pax", "2 tickets", "one rooms", "3 nights", "just me"],
    "facts._NAME": ["my name is Ben", "my name's Ben", "name is Ben Smith", "this is Ann", "call me Al", "i am Bo",
                    "i'm Jo", "it's Kim"],
    "facts._COMPLAINT": ["already told you", "as i said", "like i mentioned", "i just said", "i told you",
                         "i just told you", "i just gave it", "i gave it", "i sent that", "i provided you",
                         "i've given it", "ive sent it", "said it before", "said that earlier", "didn't i say",
                         "did i not just give", "you asked me that already", "u had it before", "it's above",
                         "see up there", "scroll up", "same as before", "again?", "how many times"],
    "retention._REJECT": ["I don't want Dr. Smith", "I dont like the Hilton", "I do not want a Ford",
                          "not the Ritz, please", "not a Tesla."],
    "quality._APOLOGY": ["sorry", "i apologise", "i apologize", "apologies", "my mistake", "my bad", "an error",
                         "something went wrong", "the inconvenience"],
}


def _texts() -> list[str]:
    out: list[str] = []
    with gzip.open(STAR, "rt", encoding="utf-8") as f:
        for line in f:
            for turn in json.loads(line)["turns"]:
                text = turn.get("text") or ""
                for form in (text, text.lower(), text.strip().lower()):
                    out.append(form)
                    out.extend(sentences(form))
    return sorted(set(out))


@pytest.fixture(scope="module")
def star_texts() -> list[str]:
    return _texts()


def test_every_cue_has_examples() -> None:
    assert CUES, "no cues found"
    assert set(CUES) == set(MATCHING)


@pytest.mark.parametrize("name", sorted(MATCHING))
def test_the_gate_never_hides_a_match_of_an_alternative(name: str) -> None:
    cue = CUES[name]
    for text in MATCHING[name]:
        assert cue.regex.search(text), f"{name}: the example {text!r} does not match the pattern itself"
        assert cue.search(text) is not None, f"{name}: the needles miss {text!r}"
        assert [m.span() for m in cue.finditer(text)] == [m.span() for m in cue.regex.finditer(text)]


@pytest.mark.parametrize("name", sorted(MATCHING))
def test_the_gate_never_hides_a_match_in_real_dialogues(name: str, star_texts: list[str]) -> None:
    cue = CUES[name]
    missed = [t for t in star_texts if not cue.possible(t) and cue.regex.search(t)]
    assert not missed, f"{name}: {missed[:3]}"


def test_a_gate_skips_text_without_its_needles() -> None:
    cue = Cue(re.compile(r"\bfoo\d"), ("foo",))
    assert cue.search("no match here") is None
    assert cue.search("a foo1") is not None and cue.match("foo2") is not None and cue.match("x foo2") is None
    assert list(cue.finditer("bar")) == []
    anchored = Cue(re.compile(r"^no\b"), (), starts=("no",))
    assert anchored.search("no way") is not None and anchored.search("say no") is None
