"""The Feast registry is applied on the cluster by a declared object: every overlay renders the feast-apply
Job as an Argo CD Sync hook in a wave before the CronJob and the feature server that read the registry,
with the same stores as materialization; and its command, run here with the real Feast CLI on a copy of
the repository (the local registry in place of the cluster's Postgres), applies every feature view."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from manifests.validate import render

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict]]:
    return {env: render(ROOT / "kustomize" / "overlays" / env) for env in ENVS}


def find(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def wave(obj: dict) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(WAVE, "0"))


def container(pod_spec: dict) -> dict:
    (only,) = pod_spec["containers"]
    return only


@pytest.mark.parametrize("env", ENVS)
def test_the_apply_job_is_a_sync_hook_before_what_reads_the_registry(overlays, env):
    objects = overlays[env]
    job = find(objects, "Job", "feast-apply")
    annotations = job["metadata"]["annotations"]
    assert annotations[HOOK] == "Sync" and annotations["argocd.argoproj.io/hook-delete-policy"]
    readers = [
        find(objects, "CronJob", "feast-materialize"),
        find(objects, "Deployment", "feast-feature-server"),
    ]
    assert all(wave(job) < wave(reader) for reader in readers)
    pod = job["spec"]["template"]["spec"]
    account = find(objects, "ServiceAccount", pod["serviceAccountName"])
    assert wave(account) <= wave(job)  # the hook's pod needs its ServiceAccount on the first sync
    # the same stores (Secrets and keys) as the materialization that fills the online store after it
    cron = find(objects, "CronJob", "feast-materialize")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert container(pod)["env"] == container(cron)["env"]
    assert container(pod)["image"] == container(cron)["image"]


def test_its_command_applies_the_repository_with_the_feast_cli(overlays, tmp_path):
    command = container(find(overlays["dev"], "Job", "feast-apply")["spec"]["template"]["spec"])["command"]
    assert command[0] == "feast" and command[-1] == "apply"
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    local_yaml = repo / "feature_store.yaml"  # stands in for cluster/feature_store.yaml (Postgres, Redis)
    argv = [a.replace("/app/feature_repo/cluster/feature_store.yaml", str(local_yaml)) for a in command]
    argv = [a.replace("/app/feature_repo", str(repo)) for a in argv]
    feast = str(Path(sys.executable).with_name("feast"))
    # The feature views import `core`; the `feast` console script does not put the working directory on
    # sys.path, so the image must (components/Dockerfile sets PYTHONPATH=/app, the repository root there).
    assert "PYTHONPATH=/app" in (ROOT / "components" / "Dockerfile").read_text()
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    (tmp_path / "home" / "feast").mkdir(parents=True)
    done = subprocess.run([feast, *argv[1:]], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [feast, "-c", str(repo), "-f", str(local_yaml), "feature-views", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0 and "customer_profile" in listed.stdout, listed.stdout + listed.stderr
