"""Recorded InferenceService GETs during a canary, Knative (tests/fixtures/kserve_status/canary_isvc.json) or
Standard mode (standard_canary_isvc.json), shaped from KServe's and Knative's source, recorded in each file: a
stand-in for the Kubernetes API that answers each GET with the next object of a scenario and then keeps
answering the last."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kserve_status"
FIXTURE = FIXTURES / "canary_isvc.json"
STANDARD_FIXTURE = FIXTURES / "standard_canary_isvc.json"
SCENARIOS = ("becomes_ready", "fails", "never_ready")
STANDARD_SCENARIOS = ("becomes_ready", "never_ready")


def scenario(name: str, fixture: Path = FIXTURE) -> list[dict[str, Any]]:
    return json.loads(fixture.read_text())[name]


def recorded_isvc(name: str, fixture: Path = FIXTURE) -> tuple[Callable[[], dict[str, Any]], list[int]]:
    """A GET function over scenario `name`, and the list that counts its calls (one entry per GET)."""
    objects, calls = scenario(name, fixture), []

    def get() -> dict[str, Any]:
        calls.append(1)
        return objects[min(len(calls), len(objects)) - 1]

    return get, calls
