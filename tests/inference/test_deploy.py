"""inference.deploy: rendered InferenceServices, the rollout state machine on a real MLflow registry, the
KServe SDK schema check and the ServingRuntime's policies."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import mlflow
import pytest
import yaml

from core.images import PLATFORM_IMAGE
from core.registry import (
    CHALLENGER,
    CHAMPION,
    get_alias_version,
    resolve_alias,
    set_alias,
    storage_location,
)
from core.spec.model import ModelSpec, load_specs
from inference.deploy.__main__ import main
from inference.deploy.annotations import CANARY_VERSION_KEY, MODEL_VERSION_KEY
from inference.deploy.apply import FileApplier
from inference.deploy.kserve_schema import sdk_problems
from inference.deploy.render import render_inference_service
from inference.deploy.rollout import Rollout
from manifests.validate import container_violations, label_violations, render
from tests.helpers.deploy_registry import two_version_registry, version_ref
from tests.helpers.specs import FIXTURE_SPEC_DIR

ROOT = Path(__file__).resolve().parents[2]
MODEL = "conversion-xgboost"  # the fixture spec: gpu: true, canary 20%
NAMESPACE = "mlops-test"
LOGGER = "http://detector.mlops-test.svc.cluster.local/events"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,45}[a-z0-9])?$")


@pytest.fixture(scope="module")
def specs() -> dict[str, ModelSpec]:
    return {spec.name: spec for spec in load_specs(FIXTURE_SPEC_DIR)}


@pytest.fixture(scope="module")
def spec(specs) -> ModelSpec:
    return specs[MODEL]


# ------------------------------------------------------------------------------------------ rendering
@pytest.mark.parametrize(
    "name", ["conversion-mlp", "conversion-sklearn", "conversion-xgboost", "intent-transformer"]
)
def test_render_each_demo_spec(specs, name: str) -> None:
    spec = specs[name]
    service = render_inference_service(spec, version_ref(name, "3"), None, NAMESPACE, logger_url=LOGGER)
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert DNS_1035.match(service["metadata"]["name"]) and service["metadata"]["namespace"] == NAMESPACE
    assert model["storageUri"].endswith("/triton/cluster") and "/3/" in model["storageUri"]
    assert (model["modelFormat"]["name"], model["protocolVersion"]) == ("triton", "v2")
    assert model["runtime"] == "kserve-tritonserver-mlops"
    # the version annotation rides on every payload event (KServe >= 0.16 `ce-annotations`)
    assert predictor["logger"] == {"mode": "all", "url": LOGGER, "metadataAnnotations": [MODEL_VERSION_KEY]}
    assert "canaryTrafficPercent" not in predictor
    assert predictor["minReplicas"] >= 1 and predictor["maxReplicas"] >= predictor["minReplicas"]
    assert service["metadata"]["labels"][MODEL_VERSION_KEY] == "3"
    assert service["metadata"]["annotations"][MODEL_VERSION_KEY] == "3"
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    for part in ("requests", "limits"):
        assert ("nvidia.com/gpu" in model["resources"][part]) is spec.serving.gpu
    assert sdk_problems(service) == []


def test_some_demo_spec_serves_on_cpu(specs) -> None:
    assert {spec.serving.gpu for spec in specs.values()} == {True, False}  # both branches above ran


def test_canary_render_splits_at_the_spec_percent(spec) -> None:
    service = render_inference_service(spec, version_ref(MODEL, "1"), version_ref(MODEL, "2"), NAMESPACE)
    predictor = service["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == spec.canary.traffic_percent == 20
    # the newest revision serves the challenger
    assert predictor["model"]["storageUri"] == version_ref(MODEL, "2").storage_uri
    assert service["metadata"]["annotations"][CANARY_VERSION_KEY] == "2"
    assert predictor["logger"]["url"].endswith(f"/{NAMESPACE}/default")  # default: the namespace's broker
    assert sdk_problems(service) == []


def test_render_refuses_what_cannot_be_served(spec) -> None:
    with pytest.raises(ValueError, match="needs a stable version"):
        render_inference_service(spec, None, version_ref(MODEL, "2"), NAMESPACE)
    with pytest.raises(ValueError, match="belongs to model 'other'"):
        render_inference_service(spec, version_ref("other", "1"), None, NAMESPACE)
    bad = spec.model_copy(update={"name": "Conversion_XGB"})
    with pytest.raises(ValueError, match="cannot name an InferenceService"):
        render_inference_service(bad, version_ref("Conversion_XGB", "1"), None, NAMESPACE)


def test_sdk_check_reports_unknown_fields_and_wrong_types(spec) -> None:
    service = render_inference_service(spec, version_ref(MODEL, "1"), version_ref(MODEL, "2"), NAMESPACE)
    broken = copy.deepcopy(service)
    broken["spec"]["predictor"]["model"]["storageURI"] = "s3://typo"
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "20"
    broken["spec"]["predictor"]["tolerations"][0]["operator"] = ["Exists"]
    assert sorted(sdk_problems(broken)) == [
        "InferenceService.spec.predictor.canaryTrafficPercent: expected int, got str",
        "InferenceService.spec.predictor.model.storageURI: unknown field of V1beta1ModelSpec",
        "InferenceService.spec.predictor.tolerations[0].operator: expected str, got list",
    ]


def test_proxied_artifact_uris_move_onto_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "mlflow-artifacts:/4/abc/artifacts/triton"
    assert storage_location(uri, "s3://bucket/mlflow/") == "s3://bucket/mlflow/4/abc/artifacts/triton"
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", "gs://b")
    assert storage_location("mlflow-artifacts://mlflow:5000/4/abc/x") == "gs://b/4/abc/x"
    assert storage_location("s3://already/there") == "s3://already/there"
    monkeypatch.delenv("MLFLOW_ARTIFACTS_DESTINATION")
    with pytest.raises(ValueError, match="set MLFLOW_ARTIFACTS_DESTINATION"):
        storage_location(uri)


# ------------------------------------------------------------------------------------ ServingRuntime
@pytest.fixture(scope="module")
def serving_runtime(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The base as an overlay builds it (namespace, instance label), until the platform lists it."""
    overlay = tmp_path_factory.mktemp("overlay")
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "mlops",
                "labels": [{"pairs": {"app.kubernetes.io/instance": "mlops-dev"}, "includeTemplates": True}],
                "resources": [os.path.relpath(ROOT / "manifests" / "serving", overlay)],
                "components": [os.path.relpath(ROOT / "kustomize" / "components" / "images", overlay)],
            }
        )
    )
    [runtime] = render(overlay)
    return runtime


def test_serving_runtime_passes_the_policies_and_the_sdk_schema(serving_runtime: dict) -> None:
    assert serving_runtime["kind"] == "ServingRuntime"
    assert serving_runtime["metadata"]["name"] == "kserve-tritonserver-mlops"
    spec = serving_runtime["spec"]
    assert {f["name"] for f in spec["supportedModelFormats"]} == {"onnx", "triton", "xgboost"}
    assert spec["protocolVersions"] == ["v2", "grpc-v2"]
    [container] = spec["containers"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", container["image"])
    # validate.py's pod_spec() does not know ServingRuntime yet, so its container rules are called here.
    assert list(label_violations(serving_runtime)) == []
    assert list(container_violations(serving_runtime, spec, container)) == []
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/dev/shm"}
    assert sdk_problems(serving_runtime) == []


def test_policy_rules_do_bite_on_the_runtime(serving_runtime: dict) -> None:
    runtime = copy.deepcopy(serving_runtime)
    container = runtime["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["readinessProbe"]
    found = "\n".join(container_violations(runtime, runtime["spec"], container))
    assert "readOnlyRootFilesystem" in found and "readinessProbe missing" in found


# ------------------------------------------------------------------------------- registry + rollout
@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """Two registered versions of MODEL in a fresh sqlite store, each with a logged Triton repository."""
    with two_version_registry(tmp_path_factory.mktemp("mlops_home"), (MODEL,)) as home:
        yield home


@pytest.fixture
def canary_state(registry: Path) -> Path:
    """champion = 1, challenger = 2, whatever an earlier test moved."""
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    return registry


def _aliases() -> tuple[str | None, str | None]:
    found = [get_alias_version(MODEL, alias) for alias in (CHAMPION, CHALLENGER)]
    return tuple(str(v.version) if v else None for v in found)


def _tags(version: str) -> dict[str, str]:
    return mlflow.MlflowClient().get_model_version(MODEL, version).tags


def _served(out: Path) -> dict:
    return FileApplier(out).get("InferenceService", MODEL, NAMESPACE)


def test_alias_resolves_to_the_versions_cluster_repository(canary_state: Path) -> None:
    ref = resolve_alias(MODEL, CHALLENGER)
    assert ref.version == "2"
    assert ref.storage_uri.endswith("/triton/cluster") and ref.local_repository_uri.endswith("/triton/local")
    assert Path(ref.storage_uri.removeprefix("file://"), MODEL, "config.pbtxt").is_file()
    assert resolve_alias(MODEL, "shadow") is None


def test_canary_then_promote(spec, canary_state: Path, tmp_path: Path) -> None:
    rollout = Rollout(FileApplier(tmp_path), NAMESPACE, logger_url=LOGGER)
    rollout.start_canary(spec)
    predictor = _served(tmp_path)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["model"]["storageUri"] == resolve_alias(MODEL, CHALLENGER).storage_uri
    assert _tags("2")["rollout_state"] == "canary"
    challenger_uri = predictor["model"]["storageUri"]

    result = rollout.promote(spec)
    assert _aliases() == ("2", None)
    served = _served(tmp_path)
    assert "canaryTrafficPercent" not in served["spec"]["predictor"]
    assert served["spec"]["predictor"]["model"]["storageUri"] == challenger_uri
    assert served["metadata"]["labels"][MODEL_VERSION_KEY] == "2"
    assert (result.champion.version, result.challenger) == ("2", None)
    assert (_tags("2")["rollout_state"], _tags("1")["rollout_state"]) == ("promoted", "retired")
    assert _tags("2")["rollout_decided_at"].endswith("+00:00")
    assert sdk_problems(served) == []


def test_rollback_serves_only_the_champion(spec, canary_state: Path, tmp_path: Path) -> None:
    applied: list[dict] = []

    class Recording(FileApplier):
        def apply(self, obj: dict) -> None:
            applied.append(copy.deepcopy(obj))
            super().apply(obj)

    Rollout(Recording(tmp_path), NAMESPACE).rollback(spec, "p95 latency 2.1x the stable version")
    assert _aliases() == ("1", None)
    champion_uri = resolve_alias(MODEL, CHAMPION).storage_uri
    first, last = (a["spec"]["predictor"] for a in applied)
    assert first["canaryTrafficPercent"] == 0  # traffic off the challenger before anything else
    assert (last["canaryTrafficPercent"], last["model"]["storageUri"]) == (0, champion_uri)
    assert _served(tmp_path)["spec"]["predictor"] == last
    assert _tags("2")["rollout_state"] == "rolled_back"
    assert _tags("2")["rollback_reason"] == "p95 latency 2.1x the stable version"


def test_interrupted_promote_leaves_the_registry_alone_and_a_retry_completes(
    spec, canary_state: Path, tmp_path: Path
) -> None:
    class FailsOnce(FileApplier):
        failed = False

        def apply(self, obj: dict) -> None:
            if not self.failed:
                self.failed = True
                raise ConnectionError("API server went away")
            super().apply(obj)

    applier = FailsOnce(tmp_path)
    rollout = Rollout(applier, NAMESPACE)
    with pytest.raises(ConnectionError):
        rollout.promote(spec)
    assert _aliases() == ("1", "2")
    assert _served(tmp_path) is None
    rollout.promote(spec)
    assert _aliases() == ("2", None)
    assert "canaryTrafficPercent" not in _served(tmp_path)["spec"]["predictor"]


def test_steps_without_a_challenger_say_so(spec, canary_state: Path, tmp_path: Path) -> None:
    rollout = Rollout(FileApplier(tmp_path), NAMESPACE)
    rollout.promote(spec)
    for step in (rollout.promote, rollout.start_canary, lambda s: rollout.rollback(s, "why")):
        with pytest.raises(LookupError, match=f"^deploy: {MODEL} has no 'challenger' version"):
            step(spec)


def test_cli_renders_and_canaries(canary_state: Path, tmp_path: Path, capsys, fixture_specs) -> None:
    assert main(["render", "--model", MODEL, "--namespace", NAMESPACE]) == 0
    out = capsys.readouterr().out
    # Log lines may precede the document when another test left a stdout logging handler behind.
    printed = yaml.safe_load(out[out.index("apiVersion:") :])
    assert printed["spec"]["predictor"]["model"]["storageUri"] == resolve_alias(MODEL, CHAMPION).storage_uri
    assert main(["canary", "--model", MODEL, "--namespace", NAMESPACE, "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"{MODEL}: canary: champion v1, challenger v2"
    assert _served(tmp_path)["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert main(["promote", "--model", MODEL]) == 1
    assert "pass --out DIR or --kubernetes" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ transformer
@pytest.mark.parametrize(
    "name", ["conversion-mlp", "conversion-sklearn", "conversion-xgboost", "intent-transformer"]
)
def test_feature_service_models_get_one_feast_transformer_for_every_version(specs, name: str) -> None:
    spec = specs[name]
    service = render_inference_service(
        spec, version_ref(name, "3"), version_ref(name, "4"), NAMESPACE, logger_url=LOGGER
    )
    assert sdk_problems(service) == []
    transformer = service["spec"].get("transformer")
    if not spec.inputs.feature_service:
        assert transformer is None, f"{name} takes request fields: nothing to look up in Feast"
        return
    [container] = transformer["containers"]
    assert container["image"] == PLATFORM_IMAGE
    assert container["command"] == ["python", "-m", "inference.transformer"]
    # No version's state: each version's model preprocesses inside, so any transformer revision feeds any
    # predictor revision, and a canary or a promotion leaves the transformer as it is.
    assert not [a for a in container["args"] if a.startswith("--model-version")]
    env = {item["name"]: item for item in container["env"]}
    assert "STORAGE_URI" not in env, "the transformer downloads nothing"
    promoted = render_inference_service(spec, version_ref(name, "4"), None, NAMESPACE, logger_url=LOGGER)
    assert promoted["spec"]["transformer"] == transformer
    secrets = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in env.values()
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert secrets == {"feast-registry", "feast-online-store"}
    assert "canaryTrafficPercent" not in transformer
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == spec.canary.traffic_percent
    assert transformer["automountServiceAccountToken"] is False
    assert list(container_violations(service, transformer, container)) == []
    assert "nvidia.com/gpu" not in str(transformer), "the GPU is the predictor's"


def test_transformer_args_parse_with_what_kserve_appends(specs) -> None:
    from inference.transformer.__main__ import build_parser

    service = render_inference_service(specs[MODEL], version_ref(MODEL, "5"), None, NAMESPACE)
    [container] = service["spec"]["transformer"]["containers"]
    # KServe's controller appends these (snake_case) to a custom transformer's args.
    appended = [
        "--model_name",
        MODEL,
        "--predictor_host",
        f"{MODEL}-predictor.{NAMESPACE}",
        "--http_port",
        "8080",
    ]
    args = build_parser().parse_args([*container["args"], *appended])
    assert (args.model_name, args.protocol, args.model_version, args.http_port) == (MODEL, "v2", None, 8080)
    assert str(args.feature_store_yaml).endswith("feature_repo/cluster/feature_store.yaml")
