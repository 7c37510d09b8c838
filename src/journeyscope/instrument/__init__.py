"""Instrument an AI agent: journey-tag every span and send it to journeyscope.

>>> from journeyscope import instrument
>>> tracing = instrument.setup()                       # embedded DuckDB by default
>>> with instrument.journey("j-42", customer_id="c-7", name="onboarding",
...                         stage="sign-up", channel="chat") as j:
...     instrument.record_turn("customer", "Hi, I'd like to sign up")
...     j.advance("payment")
...     instrument.record_outcome("completed")
...     instrument.record_feedback(csat=5, comment="quick and easy")   # what the customer reported
"""

from journeyscope.instrument.context import (
    Journey,
    JourneyState,
    continue_journey,
    current_journey,
    inject_headers,
    journey,
    stage,
)
from journeyscope.conventions import register_channel
from journeyscope.instrument.processor import JourneySpanProcessor
from journeyscope.instrument.tracing import Tracing, default_db_path, otlp_exporter, setup
from journeyscope.instrument.turns import record_feedback, record_outcome, record_turn

__all__ = [
    "Journey",
    "JourneySpanProcessor",
    "JourneyState",
    "Tracing",
    "continue_journey",
    "current_journey",
    "default_db_path",
    "inject_headers",
    "journey",
    "otlp_exporter",
    "record_feedback",
    "record_outcome",
    "record_turn",
    "register_channel",
    "setup",
    "stage",
]
