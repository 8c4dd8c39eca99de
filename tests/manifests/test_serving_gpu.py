"""Triton's ServingRuntime per overlay: valid for the kserve SDK's models everywhere, on GPU nodes in prod
only, and combined with what inference.deploy renders for a GPU model the way KServe builds the pod."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.registry import ModelVersionRef
from inference.deploy.kserve_schema import sdk_problems
from inference.deploy.render import GPU_RESOURCE, render_inference_service
from manifests.validate import render
from tests.helpers.specs import fixture_spec

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def runtimes() -> dict[str, dict]:
    found = {}
    for env in ENVS:
        objects = render(ROOT / "kustomize" / "overlays" / env)
        [runtime] = [o for o in objects if o["kind"] == "ServingRuntime"]
        found[env] = runtime
    return found


@pytest.mark.parametrize("env", ENVS)
def test_runtime_fits_the_kserve_schema(runtimes, env):
    assert sdk_problems(runtimes[env]) == []


def test_only_prod_schedules_triton_on_gpu_nodes(runtimes):
    prod = runtimes["prod"]["spec"]
    assert prod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert prod["tolerations"] == [GPU_TOLERATION]
    for env in ("dev", "staging"):
        spec = runtimes[env]["spec"]
        assert "nodeSelector" not in spec and "tolerations" not in spec, env


def test_the_runtime_itself_asks_for_no_gpu(runtimes):
    # The GPU count is per model (spec.serving.gpu, added by inference.deploy): a runtime-wide GPU would
    # give every CPU model a GPU it never uses.
    for env, runtime in runtimes.items():
        for part in ("requests", "limits"):
            assert GPU_RESOURCE not in runtime["spec"]["containers"][0]["resources"][part], env


def predictor_pod(runtime: dict, service: dict) -> dict:
    """KServe's merge for these fields: the runtime's pod fields, then the predictor's where it sets one;
    container resources merged key by key with the predictor's winning."""
    predictor = service["spec"]["predictor"]
    pod = {key: runtime["spec"][key] for key in ("nodeSelector", "tolerations") if key in runtime["spec"]}
    pod |= {key: predictor[key] for key in ("nodeSelector", "tolerations") if key in predictor}
    resources = {}
    for part in ("requests", "limits"):
        resources[part] = runtime["spec"]["containers"][0]["resources"][part] | predictor["model"].get(
            "resources", {}
        ).get(part, {})
    return pod | {"resources": resources}


def rendered_service(model: str) -> dict:
    ref = ModelVersionRef(
        name=model,
        version="3",
        storage_uri=f"s3://models/{model}/3/triton/cluster",
        local_repository_uri="file:///tmp/unused",
    )
    spec = fixture_spec(model)
    return render_inference_service(spec, ref, None, namespace="mlops")


@pytest.mark.parametrize("model, gpus", [("conversion-xgboost", "1"), ("conversion-sklearn", None)])
def test_prod_pod_gets_a_gpu_node_and_a_gpu_only_for_gpu_models(runtimes, model, gpus):
    pod = predictor_pod(runtimes["prod"], rendered_service(model))
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert GPU_TOLERATION in pod["tolerations"]
    assert pod["resources"]["limits"].get(GPU_RESOURCE) == gpus
    assert pod["resources"]["requests"].get(GPU_RESOURCE) == gpus
