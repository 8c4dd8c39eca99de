"""The spec's `evaluation.behaviour` section: the demo checks load, and every broken check fails with a
one-line message naming the file and the check's field (no pydantic union tags in the path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import SpecError
from core.spec.behaviour import DirectionCheck, InvarianceCheck, MinimumCheck
from core.spec.model import DEFAULT_SPEC_DIR, load_spec, load_specs
from tests.helpers.specs import fixture_spec_data

INVARIANCE = {
    "kind": "invariance",
    "name": "region_is_irrelevant",
    "feature": "region",
    "replace": "seen",
    "max_change": 0.1,
}
DIRECTION = {
    "kind": "direction",
    "name": "views_lift",
    "features": ["pricing_page_views_7d"],
    "add": 3,
    "expect": "non_decreasing",
}
MINIMUM = {
    "kind": "minimum",
    "name": "obvious",
    "examples": [{"input": {"text": "Hi there!"}, "expect": "general"}],
}


def _load(tmp_path: Path, model: str, checks: list[dict[str, Any]]):
    data = fixture_spec_data(model)
    data["evaluation"]["behaviour"] = checks
    path = tmp_path / f"{model}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path)


def test_demo_specs_declare_checks_of_every_kind():
    kinds = {s.name: [type(c) for c in s.evaluation.behaviour] for s in load_specs(DEFAULT_SPEC_DIR)}
    assert kinds["conversion-xgboost"] == [InvarianceCheck, InvarianceCheck, DirectionCheck, DirectionCheck]
    assert kinds["intent-transformer"] == [MinimumCheck]
    (intent,) = load_specs(DEFAULT_SPEC_DIR, names=["intent-transformer"])
    (obvious,) = intent.evaluation.behaviour
    classes = intent.label.classes
    assert {e.expect for e in obvious.examples} == set(classes)  # every intent has an obvious example


def test_checks_load_typed_and_frozen(tmp_path):
    spec = _load(tmp_path, "conversion-xgboost", [INVARIANCE, DIRECTION])
    invariance, direction = spec.evaluation.behaviour
    assert invariance.perturbation == "region -> each seen value"
    assert invariance.max_violation_share == 0.0 and invariance.max_rows == 500
    assert direction.perturbation == "pricing_page_views_7d +3" and direction.target is None
    assert direction.features == ("pricing_page_views_7d",) and direction.tolerance == 0.0
    with pytest.raises(Exception, match="frozen"):
        direction.tolerance = 0.5  # type: ignore[misc]
    assert _load(tmp_path, "conversion-xgboost", []).evaluation.behaviour == ()


def test_a_spec_without_the_section_has_no_checks(tmp_path):
    data = fixture_spec_data("conversion-sklearn")
    del data["evaluation"]["behaviour"]
    path = tmp_path / "conversion-sklearn.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_spec(path).evaluation.behaviour == ()


def _without(check: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in check.items() if k not in keys}


# (id, model, checks, dotted field, fragment of the problem)
INVALID = [
    ("unknown-kind", "conversion-xgboost", [{**INVARIANCE, "kind": "monotone"}], "0.kind",
     "unknown kind 'monotone' (allowed: invariance, direction, minimum)"),
    ("missing-kind", "conversion-xgboost", [_without(INVARIANCE, "kind")], "0.kind",
     "required field is missing (one of: invariance, direction, minimum)"),
    ("unknown-field", "conversion-xgboost", [{**DIRECTION, "step": 1}], "0.step",
     "unknown field (allowed: kind, name, features, add, multiply, target, expect, tolerance"),
    ("missing-field", "conversion-xgboost", [_without(INVARIANCE, "max_change")], "0.max_change",
     "required field is missing"),
    ("bad-name", "conversion-xgboost", [{**INVARIANCE, "name": "Region check"}], "0.name",
     "lowercase letters, digits and '_'"),
    ("duplicate-name", "conversion-xgboost", [INVARIANCE, {**DIRECTION, "name": INVARIANCE["name"]}],
     "1.name", "duplicate check name 'region_is_irrelevant'"),
    ("max-change-above-1", "conversion-xgboost", [{**INVARIANCE, "max_change": 1.5}], "0.max_change",
     "less than or equal to 1"),
    ("negative-tolerance", "conversion-xgboost", [{**DIRECTION, "tolerance": -0.1}], "0.tolerance",
     "greater than or equal to 0"),
    ("share-too-large", "conversion-xgboost", [{**DIRECTION, "max_violation_share": 0.5}],
     "0.max_violation_share", "less than or equal to 0.25"),
    ("zero-rows", "conversion-xgboost", [{**INVARIANCE, "max_rows": 0}], "0.max_rows", "greater than 0"),
    ("both-perturbations", "conversion-xgboost", [{**INVARIANCE, "shift": 1}], "0",
     "set exactly one of replace or shift (both are set)"),
    ("no-perturbation", "conversion-xgboost", [_without(INVARIANCE, "replace")], "0",
     "set exactly one of replace or shift (neither is set)"),
    ("replace-not-a-list", "conversion-xgboost", [{**INVARIANCE, "replace": "all"}], "0.replace",
     "must be 'seen' or a non-empty list of values (got 'all')"),
    ("replace-duplicates", "conversion-xgboost", [{**INVARIANCE, "replace": ["emea", "emea"]}], "0.replace",
     "duplicate values"),
    ("zero-shift", "conversion-xgboost", [{**_without(INVARIANCE, "replace"), "shift": 0}], "0.shift",
     "must not be 0"),
    ("add-and-multiply", "conversion-xgboost", [{**DIRECTION, "multiply": 2}], "0",
     "set exactly one of add or multiply (both are set)"),
    ("multiply-by-one", "conversion-xgboost", [{**_without(DIRECTION, "add"), "multiply": 1}], "0.multiply",
     "must be > 0 and not 1"),
    ("no-features", "conversion-xgboost", [{**DIRECTION, "features": []}], "0.features", "at least 1 item"),
    ("bad-expect", "conversion-xgboost", [{**DIRECTION, "expect": "up"}], "0.expect",
     "'non_decreasing' or 'non_increasing' (got 'up')"),
    ("unknown-binary-class", "conversion-xgboost", [{**DIRECTION, "target": "yes"}], "0.target",
     "unknown class 'yes': the model predicts 0, 1"),
    ("label-as-feature", "conversion-xgboost", [{**DIRECTION, "features": ["converted"]}], "0.features",
     "'converted' is the label or an entity key, not a model input"),
    ("entity-key-as-feature", "conversion-xgboost", [{**INVARIANCE, "feature": "customer_id"}], "0.feature",
     "'customer_id' is the label or an entity key"),
    ("no-examples", "intent-transformer", [{**MINIMUM, "examples": []}], "0.examples", "at least 1 item"),
    ("unknown-intent", "intent-transformer",
     [{**MINIMUM, "examples": [{"input": {"text": "hi"}, "expect": "greeting"}]}], "0.examples.0.expect",
     "unknown class 'greeting': the model predicts pricing, demo_request"),
    ("not-a-request-field", "intent-transformer",
     [{**MINIMUM, "examples": [{"input": {"message": "hi"}, "expect": "general"}]}], "0.examples.0.input",
     "'message' is not a request field (text)"),
    ("request-value-type", "intent-transformer",
     [{**MINIMUM, "examples": [{"input": {"text": 5}, "expect": "general"}]}], "0.examples.0.input.text",
     "must be a string value (got 5)"),
    ("direction-on-text", "intent-transformer",
     [{**DIRECTION, "features": ["text"], "target": "pricing"}], "0.features",
     "'text' is a string request field"),
    ("multiclass-direction-without-target", "intent-transformer", [{**DIRECTION, "features": ["text"]}],
     "0.target", "required for a multiclass model"),
    ("invariance-not-a-request-field", "intent-transformer", [INVARIANCE], "0.feature",
     "'region' is not a request field (text)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "checks", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_check(tmp_path, model, checks, field, fragment):
    with pytest.raises(SpecError) as info:
        _load(tmp_path, model, checks)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / model}.yaml: evaluation.behaviour.{field}: "), message
    assert fragment in message, message
