"""``journeyscope privacy``: check the privacy policy, and show the compliance view of a warehouse."""

from __future__ import annotations

import json
from typing import Any

import click

from journeyscope.cli.common import db_option
from journeyscope.privacy.policy import load_policy
from journeyscope.warehouse.compliance import compliance_view
from journeyscope.warehouse.store import Warehouse


@click.group("privacy")
def privacy() -> None:
    """PII redaction policy and compliance view."""


@privacy.command("check")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
              help="Policy file (default: $JOURNEYSCOPE_PRIVACY, else ./privacy.toml, else the defaults).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def check(policy_file: str | None, fmt: str) -> None:
    """Validate the policy in force and show what it does (a bad file is one clear error)."""
    described = load_policy(policy_file).describe()
    if fmt == "json":
        click.echo(json.dumps(described, indent=2))
        return
    click.echo(f"policy: {described['source']}")
    for name, rule in described["types"].items():
        click.echo(f"  {name:<14} {_rule(rule)}")
    for pattern in described["patterns"]:
        click.echo(f"  {pattern['name']:<14} {_rule(pattern)}  /{pattern['regex']}/")
    for key, rule in described["attributes"].items():
        click.echo(f"  attr {key:<9} {_rule(rule)}")
    click.echo(f"  never redacted (join keys): {', '.join(described['protected_keys'])}")
    if described["retention_days"] is not None:
        click.echo(f"  retention: {described['retention_days']} days")
    for note in described["notes"]:
        click.echo(f"warning: {note}")


def _rule(rule: dict[str, Any]) -> str:
    if rule["configured"] == rule["effective"]:
        return rule["effective"]
    return f"{rule['effective']} (configured {rule['configured']}, failing closed)"


@privacy.command("report")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def report(db: str, fmt: str) -> None:
    """The compliance view: PII per stage, where it entered, consent coverage, policy, audit log."""
    with Warehouse(db, read_only=True) as warehouse:
        view = compliance_view(warehouse.cursor())
    if fmt == "json":
        click.echo(json.dumps(view, indent=2, default=str))
        return
    policy = view["policy"] or {}
    click.echo(f"policy: {policy.get('source', 'not recorded yet')}; types off: "
               f"{', '.join(policy.get('types_off', [])) or 'none'}")
    t = view["totals"]
    click.echo(f"{t['values_redacted']} values redacted in {t['journeys_with_pii']} journeys, "
               f"{t['failures']} failures")
    for r in view["stages"]:
        click.echo(f"  {r['journey'] or '-'}/{r['stage'] or '-'}: {r['pii_type']} {r['action']} "
                   f"x{r['values']} ({r['journeys']} journeys)")
    for r in view["consent"]:
        scopes = ", ".join(f"{s} {c}/{r['journeys']}" for s, c in r["scopes"].items()) or "none"
        click.echo(f"  consent {r['journey']}/{r['stage']}: {scopes}")
    for e in view["audit"][:10]:
        click.echo(f"  audit #{e['id']} {e['at']} {e['actor']} {e['action']} rows={e['rows']}")
