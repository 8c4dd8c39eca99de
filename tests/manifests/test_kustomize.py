"""Every overlay builds with the real `kubectl kustomize`; the rendered objects keep the bases' promises."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from manifests.validate import (
    MissingDependencyError,
    policy_violations,
    referenced_secrets,
    render,
    schema_violations,
)
from monitoring.retrain_trigger.deployed import DeployedPipeline
from monitoring.retrain_trigger.submitters import DEFAULT_PIPELINE_PACKAGE

CURRENT_VERSION = DeployedPipeline.of_package(DEFAULT_PIPELINE_PACKAGE).version

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
# Secrets the workloads read that no manifest creates: they hold credentials, so they are made out of
# band (kubectl, ExternalSecret, sealed secret) per installation. Name -> why it is external.
EXTERNAL_SECRETS = {
    "retrain-trigger-token": "bearer token shared by Alertmanager and the trigger",
    "mlflow-postgres": "MLflow backend store (external Postgres) host, database, user, password",
    "mlflow-artifact-store": "MLflow artifact bucket URI and object-storage credentials",
    "feast-registry": "Feast SQL registry (Postgres) host, user, password",
    "feast-online-store": "Feast online store (Redis) host and password",
    "feast-offline-store": "Parquet location (FEATURE_DATA_URI) and object-storage credentials",
    "payload-log-store": "drift detector: S3 endpoint and credentials of batched payload logs (optional)",
}
# None: the Alertmanager route is an AlertmanagerConfig object (tests/manifests/test_alerting.py).
GENERATED_SECRETS: set[str] = set()


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict]]:
    return {env: render(ROOT / "kustomize" / "overlays" / env) for env in ENVS}


@pytest.fixture(scope="module")
def argocd() -> list[dict]:
    return render(ROOT / "kustomize" / "argocd")


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def kinds(objects: list[dict]) -> set[str]:
    return {o["kind"] for o in objects}


@pytest.mark.parametrize("env", ENVS)
def test_overlay_builds_every_app_into_the_namespace(overlays, env):
    objects = overlays[env]
    for kind, name in [
        ("Namespace", "mlops"),
        ("Deployment", "retrain-trigger"),
        ("Deployment", "mlflow"),
        ("CronJob", "feast-materialize"),
        ("Deployment", "feast-feature-server"),
        ("AlertmanagerConfig", "mlops-retrain"),
        ("PipelineVersion", CURRENT_VERSION),
        ("PrometheusRule", "mlops-alerts"),
        ("NetworkPolicy", "default-deny-all"),
    ]:
        find(objects, kind, name)
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"mlops"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/instance"] == f"mlops-{env}" for o in objects)


@pytest.mark.parametrize("env", ENVS)
def test_overlay_passes_every_policy(overlays, env):
    assert policy_violations(overlays[env]) == []


def test_argocd_objects_pass_the_label_policy(argocd):
    assert policy_violations(argocd) == []


def test_policy_check_reports_each_broken_rule(overlays):
    deployment = copy.deepcopy(find(overlays["dev"], "Deployment", "mlflow"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "ghcr.io/mlflow/mlflow:latest"
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["securityContext"]["capabilities"]
    del container["resources"]["limits"]
    del container["livenessProbe"]
    del deployment["metadata"]["labels"]["app.kubernetes.io/version"]
    found = "\n".join(policy_violations([deployment]))
    for expected in (
        "not pinned",
        "readOnlyRootFilesystem",
        "capabilities.drop",
        "resources.limits",
        "livenessProbe missing",
        "app.kubernetes.io/version",
    ):
        assert expected in found
    assert "readinessProbe" not in found


def test_untagged_image_and_root_user_are_violations(overlays):
    job = copy.deepcopy(find(overlays["dev"], "CronJob", "feast-materialize"))
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["containers"][0]["image"] = "registry:5000/platform"
    del pod["securityContext"]["runAsNonRoot"]
    del pod["containers"][0]["securityContext"]["runAsNonRoot"]
    found = "\n".join(policy_violations([job]))
    assert "not pinned" in found and "runAsNonRoot" in found
    assert "Probe" not in found  # CronJob containers need no probes


@pytest.mark.parametrize("env", ENVS)
def test_every_referenced_secret_is_generated_or_documented_external(overlays, env):
    objects = overlays[env]
    generated = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert generated == GENERATED_SECRETS
    referenced = referenced_secrets(objects)
    assert referenced - generated - EXTERNAL_SECRETS.keys() == set()
    assert EXTERNAL_SECRETS.keys() <= referenced, "a documented external Secret is no longer used"


@pytest.mark.parametrize("env", ENVS)
def test_retrain_trigger_has_no_rbac_and_a_kfp_audience_token(overlays, env):
    objects = overlays[env]
    assert not kinds(objects) & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert find(objects, "ServiceAccount", "retrain-trigger")["automountServiceAccountToken"] is False
    spec = find(objects, "Deployment", "retrain-trigger")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    projected = next(v for v in pod["volumes"] if "projected" in v)["projected"]["sources"][0]
    assert projected["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    env_vars = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env_vars["KF_PIPELINES_SA_TOKEN_PATH"] == "/var/run/secrets/kubeflow/pipelines/token"
    assert "PodDisruptionBudget" not in {o["kind"] for o in objects if "retrain" in o["metadata"]["name"]}


@pytest.mark.parametrize("name", ["mlflow", "feast-feature-server"])
def test_only_prod_runs_the_stateless_services_redundantly(overlays, name):
    prod = find(overlays["prod"], "Deployment", name)["spec"]
    assert prod["replicas"] == 2
    assert "podAntiAffinity" in prod["template"]["spec"]["affinity"]
    budget = find(overlays["prod"], "PodDisruptionBudget", name)["spec"]
    assert budget["minAvailable"] == 1 and budget["selector"] == prod["selector"]
    for env in ("dev", "staging"):
        assert find(overlays[env], "Deployment", name)["spec"]["replicas"] == 1
        assert "PodDisruptionBudget" not in kinds(overlays[env])


def test_single_writers_get_no_disruption_budget(overlays):
    # A PDB with minAvailable 1 over a one-replica Deployment would block every node drain.
    budgets = {o["metadata"]["name"] for o in overlays["prod"] if o["kind"] == "PodDisruptionBudget"}
    assert budgets == {"mlflow", "feast-feature-server"}
    for name in ("retrain-trigger", "drift-detector"):
        assert find(overlays["prod"], "Deployment", name)["spec"]["replicas"] == 1


def memory_limit_mib(objects: list[dict], name: str) -> float:
    value = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["resources"]
    quantity = value["limits"]["memory"]
    return float(quantity[:-2]) * (1024 if quantity.endswith("Gi") else 1)


@pytest.mark.parametrize("name", ["mlflow", "retrain-trigger", "feast-feature-server"])
def test_sizes_grow_from_dev_to_prod(overlays, name):
    sizes = [memory_limit_mib(overlays[env], name) for env in ENVS]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_drift_detector_scrape_job_is_the_one_the_alert_matches(overlays):
    monitor = find(overlays["prod"], "PodMonitor", "drift-detector")
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    assert relabel["targetLabel"] == "job" and relabel["replacement"] == "drift-detector"
    rule = find(overlays["prod"], "PrometheusRule", "mlops-alerts")
    assert 'up{job="drift-detector"}' in yaml.safe_dump(rule)


def test_network_policies_deny_by_default_and_allow_dns(overlays):
    objects = overlays["prod"]
    deny = find(objects, "NetworkPolicy", "default-deny-all")["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    dns = find(objects, "NetworkPolicy", "allow-dns-egress")["spec"]["egress"][0]["ports"]
    assert {(p["protocol"], p["port"]) for p in dns} == {("UDP", 53), ("TCP", 53)}


def test_bases_hold_no_environment_values():
    for base in sorted((ROOT / "manifests").glob("*/kustomization.yaml")):
        for obj in render(base.parent):
            labels = obj["metadata"].get("labels") or {}
            assert "namespace" not in obj["metadata"] or obj["kind"] == "Namespace", base
            assert "app.kubernetes.io/instance" not in labels, f"{base}: instance belongs in an overlay"


def patch_documents(kustomization: Path) -> list:
    config = yaml.safe_load(kustomization.read_text())
    assert "patchesJson6902" not in config, f"{kustomization}: JSON6902 patches"
    documents = []
    for patch in config.get("patches", []):
        text = patch.get("patch") or (kustomization.parent / patch["path"]).read_text()
        documents += list(yaml.safe_load_all(text))
    return documents


def test_patches_are_strategic_merges_never_positional():
    kustomizations = list(ROOT.glob("kustomize/**/kustomization.yaml")) + list(
        ROOT.glob("manifests/*/kustomization.yaml")
    )
    documents = [doc for path in kustomizations for doc in patch_documents(path)]
    assert len(documents) >= 4
    # A JSON6902 patch is a list of operations; a strategic merge is an object naming its target.
    assert all(isinstance(doc, dict) and doc.get("kind") and doc["metadata"]["name"] for doc in documents)


def test_argocd_syncs_dev_automatically_and_pins_prod(argocd):
    apps = {a["metadata"]["name"]: a["spec"] for a in argocd}
    assert set(apps) == {f"mlops-{env}" for env in ENVS}
    assert apps["mlops-dev"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    for env in ("staging", "prod"):
        spec = apps[f"mlops-{env}"]
        assert "automated" not in spec["syncPolicy"]
        assert spec["source"]["targetRevision"].startswith("v"), "staging/prod pin a release tag"
    for env in ENVS:
        assert (ROOT / apps[f"mlops-{env}"]["source"]["path"]).is_dir()


def test_pipeline_manifest_is_written_by_the_compiler(overlays):
    # Staleness against a fresh compile is tests/pipelines/test_compile.py; here: it ships in every overlay.
    shipped = ROOT / "manifests" / "pipelines" / "training-pipeline.k8s.yaml"
    assert [o["kind"] for o in yaml.safe_load_all(shipped.read_text())] == ["Pipeline", "PipelineVersion"]
    for env in ENVS:
        kinds = {(o["kind"], o["metadata"]["name"]) for o in overlays[env]}
        assert ("PipelineVersion", CURRENT_VERSION) in kinds, env


@pytest.mark.parametrize("env", ENVS)
def test_core_kinds_match_the_kubernetes_schemas(overlays, env):
    try:
        found = schema_violations(overlays[env])
    except MissingDependencyError as error:
        pytest.fail(str(error))
    assert found == []
