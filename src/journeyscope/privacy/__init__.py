"""Privacy: find PII in spans and redact it before it is stored or leaves the process.

On by default: a fresh install masks every built-in type (e-mail addresses, phone
numbers, payment cards, IBANs, national ids, IP addresses). The policy
(:func:`load_policy`: ``privacy.toml`` or ``JOURNEYSCOPE_PRIVACY``) may hash a type
instead (a keyed HMAC, so equal values still join), drop it, or turn it off, which
is explicit and shown in the compliance view.

- :func:`redact_rows`: a span batch (``SPAN_SCHEMA`` Arrow table), as the warehouse ingests it;
- :class:`Redactor`: one text or attribute map;
- :class:`RedactingSpanExporter`: wraps an OTel exporter so PII never leaves the agent's process.

``redact_rows`` needs pyarrow and the exporter the OTel SDK; both are imported on
first use, so ``journeyscope.instrument`` never pays for what it does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journeyscope.privacy.detectors import BUILTIN_TYPES, Found, find_pii
from journeyscope.privacy.policy import (
    PROTECTED_KEYS,
    Action,
    CustomPattern,
    PrivacyPolicy,
    load_policy,
    parse_inline,
    parse_policy,
)
from journeyscope.privacy.redactor import Redactor

if TYPE_CHECKING:
    from journeyscope.privacy.columnar import redact_rows
    from journeyscope.privacy.exporter import RedactingSpanExporter
    from journeyscope.privacy.report import RedactionReport

_LAZY = {
    "redact_rows": "journeyscope.privacy.columnar",
    "RedactionReport": "journeyscope.privacy.report",
    "RedactingSpanExporter": "journeyscope.privacy.exporter",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'journeyscope.privacy' has no attribute {name!r}")


__all__ = [
    "BUILTIN_TYPES",
    "PROTECTED_KEYS",
    "Action",
    "CustomPattern",
    "Found",
    "PrivacyPolicy",
    "RedactingSpanExporter",
    "RedactionReport",
    "Redactor",
    "find_pii",
    "load_policy",
    "parse_inline",
    "parse_policy",
    "redact_rows",
]
