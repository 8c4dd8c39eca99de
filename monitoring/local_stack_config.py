"""The local monitoring stack's configuration files: a `prometheus.yml` with the cluster's job names, and
time-scaled copies of the committed rules and Alertmanager configuration (see monitoring/local_stack.py).

`time_scale` divides every rule's `for:`/`keep_firing_for:`, Alertmanager's group_wait/group_interval/
repeat_interval and the scrape/evaluation intervals (at least 1 s each); the committed files keep theirs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from inference.deploy.annotations import NAMESPACE
from inference.local_prometheus import triton_scrape_job

# Prometheus' own defaults, which the committed rules were written against.
SCRAPE_INTERVAL_S, RESEND_DELAY_S = 15.0, 60.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_ROUTE_TIMERS = ("group_wait", "group_interval", "repeat_interval")
_RULE_TIMERS = ("for", "keep_firing_for")


def duration_s(text: str) -> float:
    """Seconds in a Prometheus duration such as `1h30m` (`ValueError` naming the text otherwise)."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r}: not a Prometheus duration")
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def scaled(text: str, time_scale: float) -> str:
    """`text` divided by `time_scale`, in whole seconds and never below 1 s."""
    return f"{max(1, round(duration_s(text) / time_scale))}s"


def time_scaled_rules(rules_text: str, time_scale: float) -> str:
    """A rule file with every `for:`/`keep_firing_for:` divided by `time_scale`."""
    document = yaml.safe_load(rules_text)
    for group in document["groups"]:
        for rule in group["rules"]:
            for key in _RULE_TIMERS:
                if key in rule:
                    rule[key] = scaled(str(rule[key]), time_scale)
    return yaml.safe_dump(document, sort_keys=False, width=1000)


def time_scaled_alertmanager(config_text: str, time_scale: float) -> str:
    """An Alertmanager configuration with every route's notification timers divided by `time_scale`."""
    config = yaml.safe_load(config_text)
    pending = [config["route"]]
    while pending:
        route = pending.pop()
        for key in _ROUTE_TIMERS:
            if key in route:
                route[key] = scaled(str(route[key]), time_scale)
        pending.extend(route.get("routes") or [])
    return yaml.safe_dump(config, sort_keys=False, width=1000)


def prometheus_config(
    drift_target: str,
    trigger_target: str,
    alertmanager_target: str,
    rule_files: Sequence[Path],
    interval: str = "15s",
    predictor_target: str | None = None,
) -> dict[str, Any]:
    """The local `prometheus.yml`: one static scrape job per service (job names as in the cluster), and
    with `predictor_target` (Triton's metrics host:port) the predictor job of the serving runtime's own
    Prometheus (inference/local_prometheus.py)."""
    jobs = {"drift-detector": drift_target, "retrain-trigger": trigger_target}
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "scrape_configs": [
            # the `namespace` target label the Prometheus Operator gives every series on a cluster: the
            # rules keep it and the Alertmanager route matches it
            {"job_name": job, "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}]}
            for job, target in jobs.items()
        ]
        + ([triton_scrape_job(predictor_target)] if predictor_target else []),
    }
