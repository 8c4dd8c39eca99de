"""The custom kinds every overlay renders pass their projects' published schemas (manifests/schemas/)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest

from manifests.validate import render
from tests.helpers import custom_schemas
from tests.helpers.custom_schemas import validate

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("overlays/dev", "overlays/staging", "overlays/prod", "overlays/dev-standard", "argocd")
# Rendered custom kinds with no schema in manifests/schemas, each with where it is checked instead.
# Keep in step with the README's "Not covered" table: a new kind fails here until it is documented.
UNVALIDATED_KINDS = {
    "pipelines.kubeflow.org/v2beta1 Pipeline": "no npm models; manifests/kfp_objects.py",
    "pipelines.kubeflow.org/v2beta1 PipelineVersion": "no npm models; manifests/kfp_objects.py",
    "serving.kserve.io/v1alpha1 ServingRuntime": "no npm models; tests/inference/test_deploy.py walks it "
    "through the kserve SDK's generated models",
}


def is_custom(obj: dict) -> bool:
    """True for CRD kinds: built-in groups are dotless (apps, batch) or end in .k8s.io; CRDs cannot."""
    group = obj["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


@pytest.fixture(scope="module")
def reports() -> dict[str, tuple[int, dict, list[dict]]]:
    """Per target: validate.mjs's exit code and report, and the custom objects it was given."""
    found = {}
    for target in TARGETS:
        custom = [obj for obj in render(ROOT / "kustomize" / target) if is_custom(obj)]
        found[target] = (*validate(custom), custom)
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_every_custom_object_with_a_schema_is_valid(reports, target):
    code, report, custom = reports[target]
    invalid = [
        f"{o['kind']}/{o['name']}: {'; '.join(o['errors'])}" for o in report["objects"] if not o["valid"]
    ]
    assert not invalid, f"{target}: " + " | ".join(invalid)
    assert code == 0
    unvalidated = set(report["unvalidated_kinds"])
    validated = [obj for obj in custom if f"{obj['apiVersion']} {obj['kind']}" not in unvalidated]
    assert len(report["objects"]) == len(validated), "every object of a known kind is reported"


def test_the_overlays_render_the_kinds_the_validators_are_meant_for(reports):
    validated = {o["kind"] for _, report, _ in reports.values() for o in report["objects"]}
    assert {"PrometheusRule", "ServiceMonitor", "PodMonitor", "Application"} <= validated


def test_kinds_without_a_schema_are_exactly_the_documented_ones(reports):
    unvalidated = {kind for _, report, _ in reports.values() for kind in report["unvalidated_kinds"]}
    undocumented = unvalidated - set(UNVALIDATED_KINDS)
    assert not undocumented, (
        f"custom kinds with no schema: {sorted(undocumented)}; add a schema package or document them "
        "in manifests/schemas/README.md and UNVALIDATED_KINDS"
    )
    stale = set(UNVALIDATED_KINDS) - unvalidated
    assert not stale, f"UNVALIDATED_KINDS lists kinds no overlay renders any more: {sorted(stale)}"


def test_the_readme_documents_every_unvalidated_kind():
    readme = (custom_schemas.SCHEMAS / "README.md").read_text()
    for entry in UNVALIDATED_KINDS:
        api_version, kind = entry.split()
        assert f"`{api_version}`" in readme and f"`{kind}`" in readme, f"README.md misses {entry}"


def first_rendered(kind: str, target: str) -> dict:
    return next(obj for obj in render(ROOT / "kustomize" / target) if obj["kind"] == kind)


@pytest.fixture(scope="module")
def broken_objects() -> dict[str, dict]:
    """Real rendered objects, each broken in one way the validators must notice."""
    rule = first_rendered("PrometheusRule", "overlays/dev")
    wrong_type = copy.deepcopy(rule)
    wrong_type["metadata"]["name"] = "for-as-number"
    wrong_type["spec"]["groups"][0]["rules"][0]["for"] = 5
    bad_duration = copy.deepcopy(rule)
    bad_duration["metadata"]["name"] = "for-in-words"
    bad_duration["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    nameless_group = copy.deepcopy(rule)
    nameless_group["metadata"]["name"] = "nameless-group"
    del nameless_group["spec"]["groups"][0]["name"]
    app = copy.deepcopy(first_rendered("Application", "argocd"))
    app["metadata"]["name"] = "no-destination"
    del app["spec"]["destination"]
    objects = [wrong_type, bad_duration, nameless_group, app]
    return {obj["metadata"]["name"]: obj for obj in objects}


def test_broken_objects_are_reported_invalid_with_the_field(broken_objects):
    code, report = validate(list(broken_objects.values()))
    assert code == 1
    errors = {o["name"]: " ".join(o["errors"]) for o in report["objects"] if not o["valid"]}
    assert set(errors) == set(broken_objects)
    assert "/spec/groups/0/rules/0/for: must be string" in errors["for-as-number"]
    assert "/spec/groups/0/rules/0/for: must match pattern" in errors["for-in-words"]
    assert "must have required property name" in errors["nameless-group"]
    assert "/spec: must have required property destination" in errors["no-destination"]


def test_a_single_broken_object_fails_the_whole_run(broken_objects):
    valid = first_rendered("ServiceMonitor", "overlays/dev")
    code, report = validate([valid, broken_objects["no-destination"]])
    assert code == 1
    assert [o["valid"] for o in report["objects"]] == [True, False]


def test_a_missing_install_fails_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(custom_schemas, "SCHEMAS", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="run `make install`"):
        validate([])
    shutil.copy(custom_schemas.VALIDATOR, tmp_path / "validate.mjs")
    result = subprocess.run(
        ["node", str(tmp_path / "validate.mjs")], input="[]", capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "node_modules is missing: run `make install`" in result.stderr
