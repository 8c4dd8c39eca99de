"""What the local runtime runs as an InferenceService's transformer is read from the object deploy renders
for the cluster (`--model-version` and `STORAGE_URI` of the stable version), never decided locally; an
InferenceService without a transformer gets none, and a transformer missing either is refused by name.
The processes themselves are tested in tests/pipelines/test_serve_transformer.py."""

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


def test_the_transformer_is_the_stable_versions_during_a_canary() -> None:
    revision = transformer_revision(_rendered("conversion-xgboost", "3", canary="4"))
    storage = "s3://models/conversion-xgboost/3/artifacts/triton/transformer"
    assert revision == Revision("conversion-xgboost", "3", storage)


def test_a_request_field_model_has_no_transformer() -> None:
    assert transformer_revision(_rendered("intent-transformer", "2")) is None


def test_a_transformer_without_its_version_or_files_is_refused_by_name() -> None:
    document = _rendered("conversion-xgboost", "3")
    broken = copy.deepcopy(document)
    container = broken["spec"]["transformer"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "STORAGE_URI"]
    with pytest.raises(ValueError, match="conversion-xgboost: its transformer needs one --model-version="):
        transformer_revision(broken)
