"""The fixture spec of a ranking model (`tests/fixtures/ranking/offer-ranker-xgboost.yaml`), for the tests of
the ranking machinery: spec rules, training, evaluation and the gate on the demo's offers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.spec.model import ModelSpec, parse_spec

RANKER_SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "ranking" / "offer-ranker-xgboost.yaml"


def ranker_spec_data() -> dict[str, Any]:
    """The ranker's fixture spec as plain data (a fresh copy each call, for a test to change)."""
    return yaml.safe_load(RANKER_SPEC_PATH.read_text())


def ranker_spec(**sections: Any) -> ModelSpec:
    """The ranker's fixture spec, validated; each keyword names a section whose keys it sets (None
    deletes the key), e.g. `ranker_spec(evaluation={"baseline_margin": {"ndcg_at_10": 0.5}})`."""
    data = ranker_spec_data()
    for section, values in sections.items():
        if not isinstance(values, dict):  # a top-level scalar such as `framework`
            data[section] = values
            continue
        for key, value in values.items():
            if value is None:
                data[section].pop(key, None)
            else:
                data[section][key] = value
    return parse_spec(data, source=RANKER_SPEC_PATH)
