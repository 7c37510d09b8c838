"""Monitors and alerts: catch a failing stage while journeys are still alive, and backtest every rule.

A pure library over the warehouse: :mod:`.signals` (what can be watched, as
SQL), :mod:`.spec` (the monitors file), :mod:`.rules` (the sequential rule),
:mod:`.engine` (one replay for backtests and live monitoring), :mod:`.alerts`
(the alert lifecycle as stored). The server only tells it that data changed.
"""

from journeyscope.warehouse.monitors.engine import Alert, backtest, firing_now
from journeyscope.warehouse.monitors.signals import Signal, register_signal, signals
from journeyscope.warehouse.monitors.spec import Monitor, MonitorSet, Webhook, load_monitors, parse_monitors

__all__ = [
    "Alert",
    "Monitor",
    "MonitorSet",
    "Signal",
    "Webhook",
    "backtest",
    "firing_now",
    "load_monitors",
    "parse_monitors",
    "register_signal",
    "signals",
]
