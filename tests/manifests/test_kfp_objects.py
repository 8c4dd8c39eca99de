"""The KFP Pipeline/PipelineVersion every overlay renders pass the kfp packages' protobuf schemas."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manifests.kfp_objects import is_kfp_object, kfp_object_problems, schema_sources
from manifests.validate import main, render
from monitoring.retrain_trigger.deployed import DeployedPipeline
from monitoring.retrain_trigger.submitters import DEFAULT_PIPELINE_PACKAGE

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
VERSION_NAME = DeployedPipeline.of_package(DEFAULT_PIPELINE_PACKAGE).version  # the current one


@pytest.fixture(scope="module")
def kfp_objects() -> dict[str, list[dict]]:
    return {
        env: [o for o in render(ROOT / "kustomize" / "overlays" / env) if is_kfp_object(o)] for env in ENVS
    }


def broken(objects: list[dict], change) -> list[dict]:
    """The overlay's KFP objects with its current PipelineVersion changed by `change(version)`."""
    copies = copy.deepcopy(objects)
    change(
        next(o for o in copies if o["kind"] == "PipelineVersion" and o["metadata"]["name"] == VERSION_NAME)
    )
    return copies


@pytest.mark.parametrize("env", ENVS)
def test_every_overlay_renders_a_valid_pipeline_and_version(kfp_objects, env):
    kinds = [(o["kind"], o["metadata"]["name"]) for o in kfp_objects[env]]
    assert ("Pipeline", "training-pipeline") in kinds and ("PipelineVersion", VERSION_NAME) in kinds
    assert {kind for kind, _ in kinds} == {"Pipeline", "PipelineVersion"}  # and the earlier versions
    assert kfp_object_problems(kfp_objects[env]) == []


def test_the_schemas_come_from_the_installed_kfp_packages():
    sources = schema_sources()
    assert set(sources) == {"kfp-pipeline-spec", "kfp-kubernetes"}
    readme = (ROOT / "manifests" / "schemas" / "README.md").read_text()
    for package, version in sources.items():
        assert f"`{package}` | {version}" in readme, (
            f"manifests/schemas/README.md must record {package} {version}"
        )


def _misspell_a_dag_field(version):
    version["spec"]["pipelineSpec"]["root"]["dag"]["taskz"] = {}


def _number_as_schema_version(version):
    version["spec"]["pipelineSpec"]["schemaVersion"] = 2


def _bad_kubernetes_executor_config(version):
    executor = {"secretAsVolum": [{"secretName": "x", "mountPath": "/x"}]}
    platforms = {"kubernetes": {"deploymentSpec": {"executors": {"exec-train": executor}}}}
    version["spec"]["platformSpec"] = {"platforms": platforms}


def _prefix_only_the_version(version):
    version["metadata"]["name"] = f"prod-{VERSION_NAME}"
    version["spec"]["pipelineName"] = "prod-training-pipeline"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_misspell_a_dag_field, 'no field named "taskz" at "PipelineSpec.root.dag"'),
        (_number_as_schema_version, "Failed to parse schemaVersion field"),
        (
            _bad_kubernetes_executor_config,
            "executors.exec-train: not a valid kfp_kubernetes.KubernetesExecutorConfig",
        ),
        (_prefix_only_the_version, "spec.pipelineName 'prod-training-pipeline' names no Pipeline"),
        (lambda v: v["spec"].pop("pipelineSpec"), "spec.pipelineSpec: required"),
        (lambda v: v["spec"].update(pipelineNmae="x"), "spec: unknown field(s) pipelineNmae"),
        (lambda v: v["spec"].update(displayName=3), "spec.displayName: must be a string"),
        (lambda v: v["metadata"].update(name="Training_Pipeline"), "is not a DNS-1123 subdomain"),
    ],
)
def test_a_broken_version_is_reported_with_the_field(kfp_objects, change, expected):
    (problem,) = kfp_object_problems(broken(kfp_objects["dev"], change))
    assert problem.startswith("PipelineVersion/") and expected in problem
    assert "\n" not in problem


def test_a_valid_kubernetes_executor_config_passes(kfp_objects):
    def mount_a_secret(version):
        executor = {"secretAsVolume": [{"secretName": "mlflow-artifact-store", "mountPath": "/secrets"}]}
        platforms = {"kubernetes": {"deploymentSpec": {"executors": {"exec-train": executor}}}}
        version["spec"]["platformSpec"] = {"platforms": platforms}

    assert kfp_object_problems(broken(kfp_objects["dev"], mount_a_secret)) == []


def test_validate_cli_reports_kfp_problems_with_schemas(tmp_path, kfp_objects, capsys):
    """`python -m manifests.validate --schemas` runs the KFP check on a rendered target."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH")
    objects = broken(kfp_objects["dev"], _misspell_a_dag_field)
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    (tmp_path / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    assert main([str(tmp_path), "--schemas"]) == 1
    assert 'no field named "taskz"' in capsys.readouterr().out
    result = subprocess.run(
        [sys.executable, "-m", "manifests.validate", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "KFP objects" in result.stdout
