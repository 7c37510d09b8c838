"""PII detectors: each type's formats and look-alikes, checksums, idempotence, measured accuracy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyscope.privacy import Action, PrivacyPolicy, Redactor, find_pii
from journeyscope.privacy.detectors import BUILTIN_TYPES, iban_ok, luhn_ok

ROOT = Path(__file__).resolve().parents[1]


def found(text: str) -> list[tuple[str, str]]:
    return [(f.pii_type, text[f.start:f.end]) for f in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to Jo.Smith@Example.co.uk.", [("email", "Jo.Smith@Example.co.uk")]),
        ("call +44 7700 900123 now", [("phone", "+44 7700 900123")]),
        ("or (415) 555-0134", [("phone", "(415) 555-0134")]),
        ("landline 020 7946 0958", [("phone", "020 7946 0958")]),
        ("card 4111 1111 1111 1111", [("card", "4111 1111 1111 1111")]),
        ("amex 3782 822463 10005", [("card", "3782 822463 10005")]),
        ("GB82 WEST 1234 5698 7654 32 thanks", [("iban", "GB82 WEST 1234 5698 7654 32")]),
        ("SSN 536-22-1459", [("national_id", "536-22-1459")]),
        ("NI AB 12 34 56 D", [("national_id", "AB 12 34 56 D")]),
        ("from 81.2.69.160", [("ip", "81.2.69.160")]),
        ("from 2001:db8::8a2e:370:7334", [("ip", "2001:db8::8a2e:370:7334")]),
    ],
)
def test_each_type_is_found(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4471829304 shipped",  # a bare 10-digit order id is not a phone
        "tracking 1Z999AA10123456784",
        "on 2024-03-15 at 14:32:07",
        "2024-03-15T14:32:07.123Z",
        "it cost $1,299.99",
        "card 4111 1111 1111 1112 declined",  # fails Luhn
        "IMEI 490154203237518",  # Luhn-valid, but no Visa card has 15 digits
        "IBAN GB82 WEST 1234 5698 7654 33",  # fails mod-97
        "SSN 000-12-3456 / 666-12-3456 / 900-70-1234",
        "version 10.0.19045.2965 and v1.2.3.4",
        "localhost 127.0.0.1, MAC 00:1A:2B:3C:4D:5E, std::vector",
        "pip install pkg@1.2.3; git clone git@github.com:acme/agent.git",
        "NI QQ 12 34 56 C is HMRC's example",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert found(text) == []


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE8937040044053201300")  # wrong length for DE


def test_existing_tokens_are_never_matched_again():
    redactor = Redactor(PrivacyPolicy({t: Action.HASH for t in BUILTIN_TYPES}, key=b"k" * 32))
    once, _ = redactor.text("mail a@example.com, call +44 7700 900123, card 4111111111111111")
    twice, counts = redactor.text(once)
    assert twice == once and counts is None
    assert "[EMAIL:" in once and "[PHONE:" in once and "[CARD:" in once


_PIECES = st.sampled_from(
    ["jane@example.com", "+44 7700 900123", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
     "536-22-1459", "81.2.69.160", "order 4471829304", "2024-03-15", "hello", "[EMAIL]", "(", "\"", ""]
)
_SEPARATORS = st.sampled_from([" ", ", ", "\n", "; ", ": ", " / ", ") ("])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=8),
       st.sampled_from([Action.MASK, Action.HASH, Action.DROP]))
def test_redaction_is_idempotent_and_leaves_no_detectable_pii(pieces, action):
    # Values separated as in text people write; values glued to each other with no separator at all
    # ("a@b.com4111...") are not promised (see the detectors' docstring).
    text = "".join(p + sep for p, sep in pieces)
    redactor = Redactor(PrivacyPolicy({t: action for t in BUILTIN_TYPES}, key=b"k" * 32))
    once, _ = redactor.text(text)
    assert redactor.text(once)[0] == once
    assert find_pii(once) == []
    for secret in ("jane@example.com", "7700 900123", "4111 1111", "536-22-1459", "81.2.69.160"):
        assert secret not in once


def _accuracy():
    spec = importlib.util.spec_from_file_location("pii_accuracy", ROOT / "benchmarks" / "pii_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_measured_precision_and_recall_on_the_corpus():
    """The figures the README reports (benchmarks/pii_accuracy.py); a regression lowers one of them."""
    result = _accuracy().score()
    floors = {  # (precision, recall) reached on tests/data/pii/corpus.jsonl
        "email": (0.94, 0.94), "iban": (1.0, 1.0), "card": (0.92, 1.0),
        "national_id": (0.87, 1.0), "phone": (1.0, 0.96), "ip": (0.90, 1.0), "all": (0.95, 0.97),
    }
    for name, (precision, recall) in floors.items():
        assert result[name]["precision"] >= precision, (name, result[name], result["errors"])
        assert result[name]["recall"] >= recall, (name, result[name], result["errors"])
    held_out = _accuracy().score(split="holdout")["all"]
    assert held_out["precision"] >= 0.9 and held_out["recall"] >= 0.99
