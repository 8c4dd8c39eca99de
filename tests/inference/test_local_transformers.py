"""What the local runtime runs as an InferenceService's transformer is read from the object deploy renders
for the cluster (the container's arguments), never decided locally: one revision for every model version
(each version preprocesses inside its model), none for an InferenceService without a transformer, and a
malformed one refused by name. The processes themselves: tests/pipelines/test_serve_transformer.py."""

from __future__ import annotations

import copy

import pytest

from core.spec.model import load_specs
from inference.deploy.render import render_inference_service
from inference.local_transformers import Revision, transformer_revision
from tests.helpers.deploy_registry import version_ref
from tests.helpers.specs import FIXTURE_SPEC_DIR

NAMESPACE = "mlops"


def _rendered(name: str, stable: str, canary: str | None = None) -> dict:
    spec = {spec.name: spec for spec in load_specs(FIXTURE_SPEC_DIR)}[name]
    challenger = version_ref(name, canary) if canary else None
    return render_inference_service(spec, version_ref(name, stable), challenger, NAMESPACE)


def test_a_canary_and_a_promotion_keep_the_same_transformer_revision() -> None:
    alone = transformer_revision(_rendered("conversion-xgboost", "3"))
    during_canary = transformer_revision(_rendered("conversion-xgboost", "3", canary="4"))
    promoted = transformer_revision(_rendered("conversion-xgboost", "4"))
    assert alone == during_canary == promoted  # the local process is not restarted
    assert alone == Revision("conversion-xgboost", ("--protocol=v2",))  # the cluster's Feast config: local


def test_a_request_field_model_has_no_transformer() -> None:
    assert transformer_revision(_rendered("intent-transformer", "2")) is None


def test_a_transformer_with_malformed_args_is_refused_by_name() -> None:
    broken = copy.deepcopy(_rendered("conversion-xgboost", "3"))
    broken["spec"]["transformer"]["containers"][0]["args"] = "--protocol=v2"
    with pytest.raises(
        ValueError, match="conversion-xgboost: its transformer's args must be a list of strings"
    ):
        transformer_revision(broken)
