"""Recorded InferenceService GETs during a Knative canary (tests/fixtures/kserve_status/canary_isvc.json,
shaped from KServe's and Knative's source, recorded in the file): a stand-in for the Kubernetes API that
answers each GET with the next object of a scenario and then keeps answering the last."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kserve_status" / "canary_isvc.json"
SCENARIOS = ("becomes_ready", "fails", "never_ready")


def scenario(name: str) -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())[name]


def recorded_isvc(name: str) -> tuple[Callable[[], dict[str, Any]], list[int]]:
    """A GET function over scenario `name`, and the list that counts its calls (one entry per GET)."""
    objects, calls = scenario(name), []

    def get() -> dict[str, Any]:
        calls.append(1)
        return objects[min(len(calls), len(objects)) - 1]

    return get, calls
