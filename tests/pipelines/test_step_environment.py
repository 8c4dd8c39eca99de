"""A pipeline step runs on exactly what the compiled IR injects: the load-features entry point (kfp's
executor over the component's source, as in a pod) in a subprocess whose environment holds only the IR's
ConfigMap and Secret variables, their values pointing at local stand-ins: the cluster feature_store.yaml
with its SQL registry on a real PostgreSQL and its online store on a real Redis, applied first by the
feast-apply Job's own command, and a real MLflow server over HTTP. Without a required key the step stops
with its one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.paths import REPO_ROOT
from core.runtime_config import CONFIG_MAP, cluster_config_data, specs_manifest
from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables
from tests.helpers.compiled_ir import executor_configs, injected_variables
from tests.helpers.stores import loopback_address, mlflow_server, postgres_server, redis_server

IMAGE_ROOT = "/app"  # where the platform image holds the repository (components/Dockerfile)
INIT = """
import sys
from kfp import dsl, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1], raise_on_error=False)
"""
DRIVERS = {  # one step each, as a pod runs it; argv: pipeline root, then the step's input artifact
    "load-features": INIT
    + """
from components.load_features.component import load_features
task = load_features(model="conversion-xgboost", start="", end="")
print("LINEAGE", task.outputs.get("Output"))
if "training_set" in task.outputs:
    print("TRAINING_SET", task.outputs["training_set"].uri)
""",
    # A component call takes no input artifact in kfp.local: a one-step pipeline imports it, as KFP does.
    "validate-data": INIT
    + """
from components.validate_data.component import validate_data
@dsl.pipeline
def one_step():
    imported = dsl.importer(artifact_uri=sys.argv[2], artifact_class=dsl.Dataset, reimport=False)
    validate_data(model="conversion-xgboost", training_set=imported.output).set_caching_options(False)
one_step()
""",
}


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> dict:
    """The ConfigMap and Secrets an installation provides, as (source, key) -> value, over live stores."""
    data = tmp_path_factory.mktemp("features")
    config = GeneratorConfig(customers=100)
    write_tables(config, generate(config), data)
    registry, online = loopback_address(), loopback_address()
    with (
        postgres_server(registry, "feast", "registry-pw", "feast"),
        redis_server(online, "online-pw"),
        mlflow_server(tmp_path_factory.mktemp("mlflow")) as tracking_uri,
    ):
        cluster_config = {k: v.replace(IMAGE_ROOT, str(REPO_ROOT)) for k, v in cluster_config_data().items()}
        cluster_config["MLFLOW_TRACKING_URI"] = tracking_uri  # the MLflow server, over HTTP as in a pod
        # The kubelet's part: the specs ConfigMap's keys as files where MLOPS_SPEC_DIR points.
        specs = tmp_path_factory.mktemp("specs")
        for name, text in yaml.safe_load(specs_manifest())["data"].items():
            (specs / name).write_text(text)
        cluster_config["MLOPS_SPEC_DIR"] = str(specs)
        values = {(f"configmap/{CONFIG_MAP}", key): value for key, value in cluster_config.items()}
        values |= {
            ("secret/feast-registry", "host"): registry,
            ("secret/feast-registry", "username"): "feast",
            ("secret/feast-registry", "password"): "registry-pw",
            ("secret/feast-online-store", "host"): online,
            ("secret/feast-online-store", "password"): "online-pw",
            ("secret/feast-offline-store", "uri"): str(data),
            ("secret/feast-offline-store", "access-key-id"): "unused-for-a-local-folder",
            ("secret/feast-offline-store", "secret-access-key"): "unused-for-a-local-folder",
        }
        _apply_as_the_job_does(values, tmp_path_factory.mktemp("apply-home"))
        yield values


def _pod_base(home: Path) -> dict[str, str]:
    """What the image gives every container: PATH to its interpreter, PYTHONPATH to the code, a HOME."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(home),
    }


def _apply_as_the_job_does(values: dict, home: Path) -> None:
    """manifests/feast/apply-job.yaml's command and env, with the image's /app at this checkout."""
    (job,) = yaml.safe_load_all((REPO_ROOT / "manifests" / "feast" / "apply-job.yaml").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = _pod_base(home)
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        env[entry["name"]] = values[(f"secret/{ref['name']}", ref["key"])] if ref else entry["value"]
    env["HOME"] = str(home)
    argv = [arg.replace(IMAGE_ROOT, str(REPO_ROOT)) for arg in container["command"]]
    argv[0] = str(Path(sys.executable).parent / argv[0])
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"feast apply (the Job's command) failed: {result.stderr[-2000:]}"


def _injected_environment(step: str, values: dict) -> dict[str, str]:
    """The variables the compiled IR injects into `step`, valued from the installation."""
    injected = injected_variables(executor_configs()[step])
    return {name: values[(source, key)] for source, key, name, _ in injected}


def _run_step(step: str, env: dict[str, str], root: Path, *inputs: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", DRIVERS[step], str(root), *inputs],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # kfp.local logs to both
        text=True,
        timeout=600,
        check=False,
    )


def test_steps_run_on_exactly_what_the_ir_injects(installation: dict, tmp_path: Path) -> None:
    """load-features (Feast: cluster config, SQL registry on Postgres), then validate-data (MLflow over
    HTTP: it looks for a champion's training set) on the first's output, each in its own environment."""
    injected = _injected_environment("load-features", installation)
    assert {"FEAST_FS_YAML_FILE_PATH", "FEATURE_DATA_URI", "FEAST_REGISTRY_HOST"} <= set(injected)
    assert "MLFLOW_TRACKING_URI" not in injected  # it does not read MLflow, so it does not get it
    assert injected["FEAST_FS_YAML_FILE_PATH"].endswith("feature_repo/cluster/feature_store.yaml")
    result = _run_step("load-features", {**_pod_base(tmp_path), **injected}, tmp_path)
    assert result.returncode == 0 and "status \x1b[92mSUCCESS" in result.stdout, result.stdout[-3000:]
    (lineage_line,) = [line for line in result.stdout.splitlines() if line.startswith("LINEAGE ")]
    assert '"rows": ' in lineage_line and '"rows": 0' not in lineage_line
    assert "training set for conversion-xgboost" in result.stdout
    (training_set,) = [
        line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("TRAINING_SET ")
    ]

    injected = _injected_environment("validate-data", installation)
    assert injected["MLFLOW_TRACKING_URI"].startswith("http://") and "FEATURE_DATA_URI" not in injected
    result = _run_step("validate-data", {**_pod_base(tmp_path), **injected}, tmp_path, training_set)
    assert result.returncode == 0 and "status \x1b[92mSUCCESS" in result.stdout, result.stdout[-3000:]
    assert "validation passed for conversion-xgboost" in result.stdout


def test_without_a_required_key_the_step_stops_with_its_one_line(installation: dict, tmp_path: Path) -> None:
    injected = _injected_environment("load-features", installation)
    del injected["FEAST_FS_YAML_FILE_PATH"]
    result = _run_step("load-features", {**_pod_base(tmp_path), **injected}, tmp_path)
    assert "finished with status \x1b[91mFAILURE" in result.stdout
    expected = (
        "load-features: environment variable FEAST_FS_YAML_FILE_PATH is not set: on a cluster it comes from "
        f"ConfigMap {CONFIG_MAP} key FEAST_FS_YAML_FILE_PATH"
    )
    step_output = result.stdout.split("Got executor_input:")[1]
    assert expected in step_output and "Traceback" not in step_output  # its one line, nothing else
