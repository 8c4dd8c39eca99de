"""The weekly retraining CronJob as prod renders it: schedule, no overlap, the submit command, the
KFP-audience token instead of the Kubernetes one, the policy, and egress only to the KFP API and DNS."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.images import PLATFORM_IMAGE
from manifests.validate import pod_spec, policy_violations, render

ROOT = Path(__file__).resolve().parents[2]
NAME = "retraining-schedule"
KFP_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"


@pytest.fixture(scope="module")
def prod() -> list[dict]:
    return render(ROOT / "kustomize" / "overlays" / "prod")


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def test_cron_job_runs_weekly_without_overlap(prod):
    spec = find(prod, "CronJob", NAME)["spec"]
    assert spec["schedule"] == "0 3 * * 1" and spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1 and 0 < job["activeDeadlineSeconds"] <= 3600


def test_cron_job_submits_the_training_pipeline_with_a_kfp_token(prod):
    cron_job = find(prod, "CronJob", NAME)
    pod = pod_spec(cron_job)
    (container,) = pod["containers"]
    argv = container["command"] + container["args"]
    assert argv == ["python", "-m", "pipelines.submit", "--host", KFP_HOST, "--reason", "schedule"]
    assert container["image"] == PLATFORM_IMAGE
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KF_PIPELINES_SA_TOKEN_PATH"] == f"{TOKEN_DIR}/token"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["kfp-token"]["mountPath"] == TOKEN_DIR and mounts["kfp-token"]["readOnly"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    (source,) = volumes["kfp-token"]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    assert source["serviceAccountToken"]["path"] == "token"
    assert "emptyDir" in volumes["tmp"]
    assert pod["serviceAccountName"] == NAME and pod["automountServiceAccountToken"] is False
    assert cron_job["metadata"]["namespace"] == "mlops"


def test_service_account_mounts_no_kubernetes_token_and_has_no_rbac(prod):
    assert find(prod, "ServiceAccount", NAME)["automountServiceAccountToken"] is False
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in (o for o in prod if o["kind"] == kind):
            assert all(s.get("name") != NAME for s in binding.get("subjects", [])), binding


def test_base_objects_pass_the_policy(prod):
    ours = [o for o in prod if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == NAME]
    assert {o["kind"] for o in ours} == {"ServiceAccount", "CronJob", "NetworkPolicy"}
    assert policy_violations(ours) == []


def test_network_policy_allows_egress_only_to_the_kfp_api_and_dns(prod):
    spec = find(prod, "NetworkPolicy", "retraining-schedule-to-kfp-api")["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": NAME}}
    assert spec["policyTypes"] == ["Egress"] and "ingress" not in spec
    kfp, dns = spec["egress"]
    (peer,) = kfp["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kubeflow"}
    assert peer["podSelector"]["matchLabels"] == {"app": "ml-pipeline"}
    assert kfp["ports"] == [{"protocol": "TCP", "port": 8888}]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    # The pods the policy selects are the CronJob's: the label is on its pod template.
    template = find(prod, "CronJob", NAME)["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == NAME
