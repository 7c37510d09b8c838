"""Monitors: the file, the sequential rule, and backtests on the demo (two regressions) and on real data."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from journeyscope.cli import cli
from journeyscope.cli.common import run_cli
from journeyscope.demo import run_demo
from journeyscope.errors import ConfigError
from journeyscope.simulator import SUPPORT_RESOLVE_REGRESSION, SimulationConfig
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.monitors import backtest, load_monitors, parse_monitors
from journeyscope.warehouse.monitors.engine import validate
from journeyscope.warehouse.monitors.rules import Baseline, run_rule

VALID = """
version = "t-1"

[defaults]
min_baseline = 50

[[monitors]]
name = "completion-drop"
signal = "completion"
journey = "*"
stage = "*"

[[monitors]]
name = "install-vs-peers"
signal = "completion"
journey = "onboarding"
stage = "app-install"
baseline = "peers"
"""


def test_a_valid_file_parses_with_defaults_applied():
    monitors = parse_monitors(VALID, "m.toml")
    assert [m.name for m in monitors.monitors] == ["completion-drop", "install-vs-peers"]
    first = monitors.monitors[0]
    assert first.min_baseline == 50 and first.scope["journey"] == "*" and first.scope["cohort"] is None
    assert monitors.monitors[1].baseline == "peers" and monitors.version == "t-1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID.replace('signal = "completion"\njourney = "onboarding"', 'signal = "csat_low"\njourney = "onboarding"'),
         "m.toml, line 15 (monitor 2): unknown signal 'csat_low'"),
        (VALID.replace('stage = "*"', 'stage = "*"\ncolour = "red"'), "m.toml, line 12 (monitor 1): unknown key(s): colour"),
        (VALID.replace('baseline = "peers"', 'baseline = "yesterday"'), "line 18 (monitor 2): baseline must be"),
        (VALID.replace('baseline = "peers"', 'target = 1.5'), "the target of a rate must be between 0 and 1"),
        (VALID + '\n[[monitors]]\nsignal = "missing_stage"\nstage = "*"\n', "cannot be split by stage"),
        (VALID.replace("min_baseline = 50", "min_baseline = -3"), "min_baseline must be a positive number"),
        (VALID + '\n[[webhooks]]\nurl = "ftp://x"\n', "(webhook 1): url must be an http"),
        (VALID.replace('version = "t-1"', 'version = "t-1'), "m.toml, line 2: not valid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_line(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_monitors(text, "m.toml")
    assert message in str(caught.value)


def test_the_shipped_default_set_loads():
    defaults = load_monitors(None)
    assert {m.name for m in defaults.monitors} >= {"completion-drop", "context-lost", "evaluator-fail-rise"}
    assert all(m.threshold > 0 for m in defaults.monitors)


# -- the rule ------------------------------------------------------------------------------------------


def _rate_rule(bad: list[int], n_per_hour: int, p0: float, **kw):
    n = np.full(len(bad), n_per_hour, dtype=float)
    k = np.array(bad, dtype=float)
    zeros = np.zeros(len(bad))
    options = dict(shift=2.0, threshold=6.0, resolve_threshold=6.0, min_window=20, min_events=5) | kw
    return run_rule("rate", "up", n, k, zeros, zeros, [Baseline(p0, 1000, k=p0 * 1000)] * len(bad), **options)


def test_a_real_shift_fires_after_few_observations_and_resolves_when_it_ends():
    """A bad rate 0.1 -> 0.4 at hour 60, fixed at hour 120, five visits an hour; 100 replications."""
    delays, resolve_delays, early, false = [], [], 0, 0
    for seed in range(100):
        rnd = random.Random(seed)
        rates = [0.1] * 60 + [0.4] * 60 + [0.1] * 80
        episodes = _rate_rule([sum(rnd.random() < p for _ in range(5)) for p in rates], 5, 0.1)
        false += sum(1 for e in episodes if e.fired < 60 or e.fired >= 150)
        # The alarm of the shift (a false alarm still firing when it began counts as caught at once).
        caught = [e for e in episodes if e.fired < 120 and (e.resolved is None or e.resolved > 60)]
        assert caught and caught[0].ci_low > 0.1 and caught[0].n >= 20
        delays.append(max(0, caught[0].fired - 60))
        early += sum(1 for e in caught if e.resolved is not None and e.resolved < 120)
        resolve_delays += [e.resolved - 120 for e in caught if e.resolved is not None and e.resolved >= 120]
        assert all(e.resolved is not None for e in caught)  # the shift's alarm ended once the shift did
    assert np.median(delays) <= 8 and max(delays) <= 24  # median within 40 visits
    assert np.median(resolve_delays) <= 8
    assert early <= 10  # an alarm resolving while the shift lasts is rare
    assert false <= 6  # 55,000 visits without a shift: about one false alarm per 25,000 at this threshold


def test_noise_at_the_baseline_rarely_fires_at_the_default_threshold():
    defaults = load_monitors(None).monitors[0]
    fired = 0
    for p0 in (0.03, 0.15, 0.5):  # 3 x 20 scopes x 1,000 hours x 5 visits = 300,000 visits of pure noise
        rnd = random.Random(int(p0 * 100))
        for _ in range(20):
            bad = [sum(rnd.random() < p0 for _ in range(5)) for _ in range(1000)]
            fired += len(_rate_rule(bad, 5, p0, threshold=defaults.threshold))
    assert fired <= 3


def test_a_mean_that_worsens_fires_downward_only():
    rnd = random.Random(3)
    values = [rnd.gauss(0.8, 0.1) for _ in range(100)] + [rnd.gauss(0.6, 0.1) for _ in range(100)]
    s = np.array(values)
    n = np.ones(len(values))
    args = dict(shift=0.5, threshold=8.0, resolve_threshold=8.0, min_window=10, min_events=1)
    down = run_rule("mean", "down", n, np.zeros(len(values)), s, s * s, [Baseline(0.8, 500, 0.1)] * len(values), **args)
    assert len(down) == 1 and 100 <= down[0].fired <= 115 and down[0].value < 0.7
    up = run_rule("mean", "up", n, np.zeros(len(values)), s, s * s, [Baseline(0.8, 500, 0.1)] * len(values), **args)
    assert up == []


# -- backtests ------------------------------------------------------------------------------------------

DEMO_END = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory):
    """The default demo (2,000 journeys, 14 days, bridge day 10, support/resolve regression days 6-11)."""
    db = tmp_path_factory.mktemp("monitors") / "demo.duckdb"
    run_demo(db, SimulationConfig(end=DEMO_END))
    return db


@pytest.mark.slow
def test_default_monitors_catch_both_demo_regressions_and_nothing_else(demo_warehouse):
    start = DEMO_END - timedelta(days=14)
    bridge = start + timedelta(days=10)
    regression_start = start + timedelta(days=SUPPORT_RESOLVE_REGRESSION.start_day)
    regression_end = start + timedelta(days=SUPPORT_RESOLVE_REGRESSION.end_day)
    with Warehouse(demo_warehouse, read_only=True) as warehouse:
        alerts = backtest(warehouse, load_monitors(None))
    stages = {(a.scope["journey"], a.scope["stage"]) for a in alerts}
    assert stages == {("onboarding", "app-install"), ("support", "resolve")}, [a.as_dict() for a in alerts]
    install = [a for a in alerts if a.scope["stage"] == "app-install"]
    assert install and all(a.fired_at < bridge for a in install)
    assert all(a.resolved_at is not None and bridge <= a.resolved_at < DEMO_END for a in install)
    resolve = [a for a in alerts if a.scope["stage"] == "resolve"]
    assert any(a.signal == "completion" for a in resolve)
    assert all(regression_start <= a.fired_at <= regression_start + timedelta(days=1) for a in resolve)
    assert all(a.resolved_at is not None and regression_end <= a.resolved_at < DEMO_END for a in resolve)
    for a in resolve:  # the evidence: a worse run than the history, with an interval that excludes it
        assert a.value > a.baseline and a.evidence["run"]["ci_low"] > a.baseline and a.n >= 20


@pytest.mark.slow
def test_backtest_command_json_and_bad_input(demo_warehouse, tmp_path, capsys):
    assert run_cli(cli, ["monitors", "backtest", "--db", str(demo_warehouse), "--format", "json",
                 "--since", "2026-10-25T00:00:00"]) == 0
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    assert alerts and set(alerts[0]) >= {"monitor", "journey", "stage", "cohort", "signal", "fired_at",
                                         "resolved_at", "value", "baseline", "n"}
    # From the 25th on: the app-install alarm still firing then, and none that had resolved before.
    assert all(a["resolved_at"] is None or a["resolved_at"] > "2026-10-25T00:00:00Z" for a in alerts)
    assert all(a["fired_at"].endswith("Z") for a in alerts)

    bad = tmp_path / "m.toml"
    bad.write_text('[[monitors]]\nname = "x"\nsignal = "completion"\njourney = "onbaording"\n')
    assert run_cli(cli, ["monitors", "backtest", "--db", str(demo_warehouse), "--monitors", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 4" in err and "unknown journey 'onbaording'" in err and "Traceback" not in err
    bad.write_text('[[monitors]]\nsignal = "completion"\njourney = "support"\nstage = "resolution"\n')
    assert run_cli(cli, ["monitors", "backtest", "--db", str(demo_warehouse), "--monitors", str(bad)]) == 1
    assert "unknown stage 'resolution' of journey 'support'" in capsys.readouterr().err
    # serve checks the same before it starts (it would otherwise block here).
    assert run_cli(cli, ["serve", "--db", str(demo_warehouse), "--monitors", str(bad), "--port", "0"]) == 1
    assert "line 4: monitor 'monitor-1': unknown stage 'resolution'" in capsys.readouterr().err
    bad.write_text('[[monitors]]\nsignal = "eval_fail"\nevaluator = "tone"\n')
    assert run_cli(cli, ["monitors", "backtest", "--db", str(demo_warehouse), "--monitors", str(bad)]) == 1
    assert "unknown evaluator 'tone'" in capsys.readouterr().err


@pytest.mark.slow
def test_other_baselines_compare_with_peers_and_targets(demo_warehouse):
    text = """
[[monitors]]
name = "vs-peers"
signal = "completion"
journey = "onboarding"
stage = "*"
baseline = "peers"
shift = 1.5

[[monitors]]
name = "vs-premium"
signal = "completion"
journey = "onboarding"
stage = "app-install"
cohort = "*"
baseline = "cohort:premium"
"""
    with Warehouse(demo_warehouse, read_only=True) as warehouse:
        monitors = parse_monitors(text)
        validate(warehouse, monitors)
        alerts = backtest(warehouse, monitors)
    peers = [a for a in alerts if a.monitor == "vs-peers"]
    # The stage that lags its journey's other stages from the start, until the bridge ships on day 10.
    assert {a.scope["stage"] for a in peers} == {"app-install"}
    bridge = DEMO_END - timedelta(days=4)
    assert all(a.fired_at < bridge and a.resolved_at is not None and a.resolved_at > bridge for a in peers)
    assert all(a.scope["cohort"] != "premium" for a in alerts if a.monitor == "vs-premium")


@pytest.mark.slow
def test_every_registered_signal_runs_and_its_evidence_reads(demo_warehouse):
    from journeyscope.warehouse.monitors import signals
    from journeyscope.warehouse.monitors.alerts import failing_visits

    with Warehouse(demo_warehouse, read_only=True) as warehouse:
        for name, signal in signals().items():
            scope = "".join(f'{d} = "*"\n' for d in ("journey", "stage") if d in signal.dimensions)
            alerts = backtest(warehouse, parse_monitors(f'[[monitors]]\nname = "m"\nsignal = "{name}"\n{scope}'
                                                         "threshold = 3.0\nmin_baseline = 20\n"))
            cur = warehouse.cursor()
            for a in alerts:
                assert a.signal == name and a.n >= 20 and a.evidence["baseline"]["n"] >= 20
                if signal.kind == "rate":
                    assert 0 <= a.baseline <= 1 and 0 <= a.value <= 1
                visits = failing_visits(cur, a)
                assert visits and all(v[5] for v in visits), (name, a.as_dict())
            cur.close()


@pytest.mark.slow
def test_stored_alerts_keep_evidence_and_erasure_removes_a_customers_visits_from_it(demo_warehouse, tmp_path):
    import shutil

    from journeyscope.warehouse.erasure import erase_customer
    from journeyscope.warehouse.monitors.alerts import alerts, record

    db = tmp_path / "copy.duckdb"
    shutil.copy(demo_warehouse, db)
    with Warehouse(db) as warehouse:
        caught = [a for a in backtest(warehouse, load_monitors(None)) if a.signal == "completion"]
        (opened,) = record(warehouse, caught)
        assert opened.event == "fired" and opened.alert["status"] == "firing"
        visits = opened.alert["failing_visits"]
        assert visits and all(v["reason"].startswith("visit ") and v["stage"] == "resolve" for v in visits)
        # Nothing fires any more: the stored alert resolves, once.
        (closed,) = record(warehouse, [])
        assert closed.event == "resolved" and closed.alert["id"] == opened.alert["id"]
        assert record(warehouse, []) == []
        customer = warehouse.query("SELECT customer_id FROM stage_visits WHERE journey_id = ? LIMIT 1",
                                   [visits[0]["journey_id"]])[0][0]
        erase_customer(warehouse, customer, actor="test")
        (kept,) = alerts(warehouse)
        assert visits[0]["journey_id"] not in {v["journey_id"] for v in kept["failing_visits"]}
        assert len(kept["failing_visits"]) == len(visits) - 1
