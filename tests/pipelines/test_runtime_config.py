"""The steps' runtime configuration as a contract: the compiled IR injects every settings key into every
step that reads it (from the IR's platform spec, against the settings model), the overlays render the
ConfigMap those injections name, and a step checks its environment first, with one line per problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from core.images import RELEASE
from core.paths import REPO_ROOT
from core.runtime_config import (
    CONFIG_MAP,
    MANIFEST,
    SPECS_CONFIG_MAP,
    SPECS_MANIFEST,
    check_step_environment,
    cluster_config_data,
    cluster_manifest,
    injections,
    specs_manifest,
    step_injections,
)
from core.settings import SPECS_MOUNT, FromConfigMap, FromSecret, Settings, variable
from manifests.validate import pipeline_executors, pod_spec, render
from tests.helpers.compiled_ir import IR, executor_configs, injected_variables, pipeline_spec

OVERLAYS = ("dev", "staging", "prod")


def compiled_steps() -> set[str]:
    return {label.removeprefix("exec-") for label in pipeline_spec()["deploymentSpec"]["executors"]}


def injected(config: dict) -> set[tuple[str, str, str]]:
    """(source, key, variable) for each variable an executor config injects, none of them optional."""
    found = set()
    for source, key, variable_name, optional in injected_variables(config):
        assert optional is False, f"optional {source} key {key} would start a pod without it"
        found.add((source, key, variable_name))
    return found


def expected(step: str) -> set[tuple[str, str, str]]:
    found = set()
    for injection in step_injections(step):
        source = injection.source
        if isinstance(source, FromSecret):
            found.add((f"secret/{source.secret}", source.key, injection.variable))
        else:
            found.add((f"configmap/{CONFIG_MAP}", injection.variable, injection.variable))
    return found


def test_every_step_gets_exactly_the_settings_it_reads() -> None:
    executors = executor_configs()
    for step in sorted(compiled_steps()):
        assert injected(executors.get(step, {})) == expected(step), f"{step}: injections differ"


def test_every_step_named_by_the_settings_model_is_a_compiled_step() -> None:
    named = {step for injection in injections() for step in injection.source.steps}
    assert named <= compiled_steps(), f"settings name steps the pipeline lacks: {named - compiled_steps()}"
    # The load-bearing keys are injected somewhere: a marker without steps would inject nothing.
    assert all(injection.source.steps for injection in injections())


def test_every_step_checks_its_environment_before_its_work() -> None:
    for label, executor in pipeline_spec()["deploymentSpec"]["executors"].items():
        program = "\n".join(executor["container"]["command"])
        step = label.removeprefix("exec-")
        call = f'check_step_environment("{step}")'
        assert call in program, f"{step}: its component does not call {call}"
        assert program.index(call) < program.index(".step import run"), f"{step}: checks after its imports"


def test_the_base_config_map_is_the_settings_model() -> None:
    assert MANIFEST.read_text() == cluster_manifest(), "run `make compile`"
    config_keys = {i.variable for i in injections() if isinstance(i.source, FromConfigMap)}
    assert set(cluster_config_data()) == config_keys
    for key, value in cluster_config_data().items():  # the cluster values are valid settings values
        field = next(i.field for i in injections() if i.variable == key)
        Settings.model_validate({variable(field): value})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_the_config_map_the_pipeline_reads(overlay: str) -> None:
    objects = render(REPO_ROOT / "kustomize" / "overlays" / overlay)
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert CONFIG_MAP in maps, f"{overlay}: no ConfigMap {CONFIG_MAP}"
    data = maps[CONFIG_MAP]["data"]
    versions = [o for o in objects if o["kind"] == "PipelineVersion"]
    assert versions
    for version in versions:
        for label, config in pipeline_executors(version).items():
            for ref in config.get("configMapAsEnv", []):
                assert ref["configMapName"] in maps, f"{overlay}: {label} reads a ConfigMap not rendered"
                missing = {e["configMapKey"] for e in ref["keyToEnv"]} - set(data)
                # Earlier versions may read fewer keys, never keys the ConfigMap dropped.
                name = version["metadata"]["name"]
                assert not missing, f"{overlay}: {name} {label} reads absent keys {missing}"
    assert data["MLFLOW_TRACKING_URI"].startswith("http"), "steps on a cluster talk to the MLflow server"


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(variable(name), raising=False)
    return monkeypatch


@pytest.mark.parametrize("missing", ["FEAST_FS_YAML_FILE_PATH", "FEATURE_DATA_URI"])
def test_a_missing_required_key_stops_the_step_with_one_line(environ: pytest.MonkeyPatch, missing) -> None:
    environ.setenv("FEAST_FS_YAML_FILE_PATH", "/app/feature_repo/cluster/feature_store.yaml")
    environ.setenv("FEATURE_DATA_URI", "s3://features")
    environ.setenv("MLOPS_SPEC_DIR", "/etc/mlops/specs")
    environ.delenv(missing)
    with pytest.raises(SystemExit) as stopped:
        check_step_environment("load-features")
    message = str(stopped.value)
    assert message.startswith(f"load-features: environment variable {missing} is not set: on a cluster")
    assert "\n" not in message
    origin = next(i.origin() for i in injections() if i.variable == missing)
    assert origin in message  # where it comes from: the ConfigMap key or the Secret and its key


def test_a_malformed_value_stops_the_step_with_one_line(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MLOPS_TRAIN_THREADS", "two")
    with pytest.raises(SystemExit) as stopped:
        check_step_environment("train")
    assert re.fullmatch(r"train: environment variable MLOPS_TRAIN_THREADS: .*'two'.*", str(stopped.value))


def test_optional_keys_keep_their_defaults(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MLOPS_SPEC_DIR", "/etc/mlops/specs")  # every step requires it
    assert check_step_environment("train").train_threads == 1
    environ.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert check_step_environment("gate").mlflow_tracking_uri == "http://mlflow:5000"


def test_the_secrets_carry_no_value_into_the_compiled_pipeline() -> None:
    """Secret values never reach the IR: only names and keys (a literal would be committed to git)."""
    text = Path(IR).read_text()
    for injection in injections():
        if isinstance(injection.source, FromSecret):
            assert f"{injection.variable}=" not in text


def test_the_cluster_guide_lists_the_config_map_as_it_is() -> None:
    guide = (REPO_ROOT / "docs" / "cluster.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", guide, flags=re.MULTILINE))
    expected = cluster_config_data() | {"CODE_VERSION": f"{RELEASE}-<code digest>"}  # changes with the code
    assert rows == expected, "docs/cluster.md: the ConfigMap table differs from the model"


def test_every_step_that_reads_specs_mounts_the_specs_config_map() -> None:
    executors = executor_configs()
    for step in compiled_steps():
        mounts = executors.get(step, {}).get("configMapAsVolume", [])
        assert [(m["configMapName"], m["mountPath"]) for m in mounts] == [(SPECS_CONFIG_MAP, SPECS_MOUNT)], (
            step
        )
    assert cluster_config_data()["MLOPS_SPEC_DIR"] == SPECS_MOUNT


def test_the_specs_config_map_holds_every_spec_file() -> None:
    data = yaml.safe_load(SPECS_MANIFEST.read_text())["data"]
    folder = REPO_ROOT / "pipelines" / "models"
    assert data == {path.name: path.read_text() for path in sorted(folder.glob("*.yaml"))}
    assert SPECS_MANIFEST.read_text() == specs_manifest(), "run `make compile`"


def _python_containers(pod: dict) -> list[dict]:
    containers = [*pod.get("initContainers", []), *pod.get("containers", [])]
    return [c for c in containers if c.get("command", [])[:2] == ["python", "-m"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_reads_specs_from_the_config_map(overlay: str) -> None:
    """Specs are not in the images (.dockerignore): every `python -m` container of the overlays and of
    the InferenceService template (the transformer) mounts them where MLOPS_SPEC_DIR points."""
    pods = [pod_spec(o) for o in render(REPO_ROOT / "kustomize" / "overlays" / overlay)]
    template = yaml.safe_load(
        (REPO_ROOT / "manifests" / "serving" / "inferenceservice.template.yaml").read_text()
    )
    pods = [pod for pod in pods if pod] + [template["spec"]["transformer"]]
    checked = 0
    for pod in pods:
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in _python_containers(pod):
            env = {e["name"]: e for e in container.get("env", [])}
            ref = env["MLOPS_SPEC_DIR"]["valueFrom"]["configMapKeyRef"]
            assert ref == {"name": CONFIG_MAP, "key": "MLOPS_SPEC_DIR"}, container["name"]
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == SPECS_MOUNT]
            assert volumes[mount["name"]]["configMap"]["name"] == SPECS_CONFIG_MAP, container["name"]
            checked += 1
    assert checked >= 6  # retrain trigger, schedule, detector pull + service, reports, transformer
