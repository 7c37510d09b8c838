"""The privacy policy: on by default, explicit to weaken, fail closed, bad files rejected by line."""

from __future__ import annotations

import pytest

from journeyscope.errors import ConfigError
from journeyscope.privacy import BUILTIN_TYPES, Action, PrivacyPolicy, Redactor, load_policy, parse_policy


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("JOURNEYSCOPE_PRIVACY", raising=False)
    monkeypatch.delenv("JOURNEYSCOPE_PII_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./privacy.toml


def test_a_fresh_install_masks_every_builtin_type():
    policy = load_policy()
    assert policy.source == "built-in defaults"
    assert {t: a for t, a in policy.types.items()} == {t: Action.MASK for t in BUILTIN_TYPES}
    assert policy.describe()["types_off"] == [] and policy.notes() == []
    text, counts = Redactor(policy).text("a@example.com +44 7700 900123 4111 1111 1111 1111 81.2.69.160")
    assert text == "[EMAIL] [PHONE] [CARD] [IP]"
    assert sum(counts.values()) == 4


def test_turning_a_type_off_is_explicit_and_shown(monkeypatch):
    monkeypatch.setenv("JOURNEYSCOPE_PRIVACY", "ip=off,email=drop")
    policy = load_policy()
    described = policy.describe()
    assert described["types_off"] == ["ip"]
    assert described["source"] == "JOURNEYSCOPE_PRIVACY"
    assert any("ip: redaction turned off" in n for n in described["notes"])
    assert Redactor(policy).text("x@example.com from 81.2.69.160")[0] == "[REDACTED] from 81.2.69.160"


def test_env_off_turns_everything_off_visibly(monkeypatch):
    monkeypatch.setenv("JOURNEYSCOPE_PRIVACY", "off")
    policy = load_policy()
    assert not policy.active
    assert policy.describe()["types_off"] == sorted(BUILTIN_TYPES)


def test_hash_without_a_key_fails_closed_to_mask(tmp_path):
    policy = parse_policy('[types]\nemail = "hash"\n')
    assert policy.effective(Action.HASH) is Action.MASK
    assert Redactor(policy).text("me@example.com")[0] == "[EMAIL]"
    assert any("JOURNEYSCOPE_PII_KEY is not set: masked instead" in n for n in policy.notes())
    assert policy.describe()["types"]["email"] == {"configured": "hash", "effective": "mask"}


def test_hash_with_a_key_joins_equal_values(monkeypatch, tmp_path):
    monkeypatch.setenv("JOURNEYSCOPE_PII_KEY", "0123456789abcdef0123")
    (tmp_path / "privacy.toml").write_text('[types]\nemail = "hash"\nphone = "hash"\n')
    redactor = Redactor(load_policy())
    a = redactor.text("Jane.Doe@Example.com")[0]
    b = redactor.text("as I said jane.doe@example.com")[0]
    assert a.startswith("[EMAIL:") and a in b  # same value, any case: same token
    assert redactor.text("other@example.com")[0] != a
    assert redactor.text("+44 7700 900123")[0] == redactor.text("0044 7700 900123")[0]
    assert "0123456789abcdef" not in repr(load_policy())  # the key never shows


def test_a_short_key_is_refused(monkeypatch):
    monkeypatch.setenv("JOURNEYSCOPE_PII_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        load_policy()


def test_custom_patterns_and_attribute_keys():
    policy = parse_policy(
        '[[patterns]]\nname = "order_number"\nregex = \'ORD-\\d{6}\'\naction = "mask"\n\n'
        '[attributes]\n"crm.notes" = "drop"\n'
    )
    redactor = Redactor(policy)
    assert redactor.text("order ORD-558812 late")[0] == "order [ORDER_NUMBER] late"
    attrs, counts = redactor.attributes({"crm.notes": "VIP, lives at 10 High St", "user.email": "x@y.com",
                                         "customer.id": "jane@example.com", "n": 3})
    assert "crm.notes" not in attrs and attrs["user.email"] == "[USER.EMAIL]"
    assert attrs["customer.id"] == "jane@example.com"  # join keys are never redacted
    assert counts[("crm.notes", "drop")] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[types]\nemail = "hash"\nemial = "mask"\n', r"line 3: unknown PII type 'emial'"),
        ('[types]\nemail = "scramble"\n', r"line 2: unknown action 'scramble'"),
        ('[types\nemail = "mask"\n', r"line 1: not valid TOML"),
        ('\n\n[[patterns]]\nname = "order"\nregex = "ORD-(\\\\d+"\n',
         r"line 5: pattern 'order' is not a valid regular"),
        ('[[patterns]]\nname = "x"\nregex = "a*"\n', r"matches the empty string"),
        ('[[patterns]]\nname = "Bad Name"\nregex = "x"\n', r"needs a name of lower-case"),
        ('[[patterns]]\nname = "email"\nregex = "x"\n', r"'email' is already taken"),
        ('[attributes]\n"customer.id" = "hash"\n', r"line 2: 'customer.id' is a journey join key"),
        ('[redact]\nemail = "mask"\n', r"line 1: unknown section 'redact'"),
        ('[retention]\nmax_age = "soon"\n', r"line 2: max_age: expected a positive age"),
    ],
)
def test_bad_policies_are_rejected_naming_the_line(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(text, "privacy.toml")


def test_bad_inline_setting_is_rejected(monkeypatch):
    monkeypatch.setenv("JOURNEYSCOPE_PRIVACY", "email=hash,fax=mask")
    with pytest.raises(ConfigError, match="unknown PII type 'fax'"):
        load_policy()


def test_policy_file_from_env_and_retention(monkeypatch, tmp_path):
    path = tmp_path / "custom.toml"
    path.write_text('[retention]\nmax_age = "90d"\n')
    monkeypatch.setenv("JOURNEYSCOPE_PRIVACY", str(path))
    policy = load_policy()
    assert policy.retention_s == 90 * 86400 and policy.source == str(path)
    monkeypatch.setenv("JOURNEYSCOPE_PRIVACY", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="cannot read privacy policy"):
        load_policy()


def test_digest_changes_with_what_the_policy_does():
    assert PrivacyPolicy().digest() == PrivacyPolicy(source="elsewhere").digest()
    assert PrivacyPolicy().digest() != parse_policy('[types]\nip = "off"\n').digest()
