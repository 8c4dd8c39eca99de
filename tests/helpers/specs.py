"""Fixture specs for the tests of the machinery: `tests/fixtures/specs/`, frozen copies of the demo specs.

Tests that exercise the platform's code (training, export, serving, canary analysis, monitoring) read
these, so a model added to `pipelines/models/` or a demo threshold changed there turns no unrelated test
red. Tests OF the demo (its specs validate, the demo pipeline trains the demo models, the loop demo) read
`core.spec.model.DEFAULT_SPEC_DIR` by name instead. Code that loads specs by model name from
`spec_directory()` reads the fixture specs under the `fixture_specs` fixture (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.spec.model import ModelSpec, load_spec, parse_spec

FIXTURE_SPEC_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "specs"
# The demo's specs in pipelines/models/, by name: tests OF the demo read these and no other spec there, so a
# user's model added beside them turns no demo test red. The classifiers are what the pipeline tests train
# (fast_specs.py) and what the demo's behaviour and conversion-label feature tests read; the ranker's own
# tests run its fixture copy (tests/fixtures/ranking/, tests/helpers/ranking.py) and `make run` the demo's.
DEMO_CLASSIFIERS = ("conversion-mlp", "conversion-sklearn", "conversion-xgboost", "intent-transformer")
DEMO_RANKERS = ("offer-ranker-xgboost",)
DEMO_MODELS = tuple(sorted(DEMO_CLASSIFIERS + DEMO_RANKERS))
FIXTURE_MODELS = ("conversion-mlp", "conversion-sklearn", "conversion-xgboost", "intent-transformer")


def fixture_spec_path(name: str) -> Path:
    return FIXTURE_SPEC_DIR / f"{name}.yaml"


def fixture_spec_data(name: str) -> dict[str, Any]:
    """The fixture spec `name` as plain data (a fresh copy each call, for a test to change)."""
    return yaml.safe_load(fixture_spec_path(name).read_text())


def fixture_spec(name: str, **sections: dict[str, Any]) -> ModelSpec:
    """The fixture spec `name`, validated; each keyword names a section whose keys it sets (a value of
    None deletes the key), e.g. `fixture_spec("conversion-mlp", monitoring={"detector": "fet_online"})`."""
    if not sections:
        return load_spec(fixture_spec_path(name))
    data = fixture_spec_data(name)
    for section, values in sections.items():
        for key, value in values.items():
            if value is None:
                data[section].pop(key, None)
            else:
                data[section][key] = value
    return parse_spec(data, source=fixture_spec_path(name))
