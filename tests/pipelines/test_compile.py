"""Every pipeline compiles, loads back with the kfp SDK, and the committed compiled files are current."""

from __future__ import annotations

import yaml

from core.pipeline_version import pipeline_version_name
from manifests.validate import render
from pipelines import compile as compile_module
from pipelines.training import DEFAULT_MODELS, PIPELINE_NAME


def _compiled(tmp_path):
    written = {path.name: path for path in compile_module.compile_all(tmp_path / "ir", tmp_path / "k8s")}
    assert set(written) == {f"{PIPELINE_NAME}.yaml", f"{PIPELINE_NAME}.k8s.yaml"}
    return written


def _tasks(spec: dict) -> dict:
    """Every task of every DAG in the IR, by task name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_the_pipeline_compiles_and_loads_back_with_the_sdk(tmp_path):
    from kfp import components

    written = _compiled(tmp_path)
    loaded = components.load_component_from_file(str(written[f"{PIPELINE_NAME}.yaml"]))
    assert loaded.name == PIPELINE_NAME
    assert set(loaded.component_spec.inputs) == {"models", "start", "end", "reason", "serving_mode"}
    assert loaded.component_spec.inputs["models"].default == DEFAULT_MODELS
    assert loaded.component_spec.inputs["serving_mode"].default == "cluster"  # local_run passes "local"


def test_kubernetes_form_is_a_pipeline_and_a_pipeline_version(tmp_path):
    written = _compiled(tmp_path)
    documents = list(yaml.safe_load_all(written[f"{PIPELINE_NAME}.k8s.yaml"].read_text()))
    assert [d["kind"] for d in documents] == ["Pipeline", "PipelineVersion"]
    # named (and listed by KFP: displayName) after the compiled IR's hash
    version = pipeline_version_name(PIPELINE_NAME, written[f"{PIPELINE_NAME}.yaml"])
    assert documents[1]["metadata"]["name"] == documents[1]["spec"]["displayName"] == version
    assert {d["apiVersion"] for d in documents} == {"pipelines.kubeflow.org/v2beta1"}
    assert documents[1]["spec"]["pipelineName"] == PIPELINE_NAME
    assert documents[1]["spec"]["pipelineSpec"]["pipelineInfo"]["name"] == PIPELINE_NAME


def test_retries_caching_and_resources_are_where_they_belong(tmp_path):
    spec = next(yaml.safe_load_all(_compiled(tmp_path)[f"{PIPELINE_NAME}.yaml"].read_text()))
    tasks = _tasks(spec)
    for io_step in ("load-features", "evaluate", "gate", "register"):
        assert tasks[io_step]["retryPolicy"]["maxRetryCount"] == 3, io_step
        assert tasks[io_step]["cachingOptions"].get("enableCache", False) is False, io_step
    # every step recomputes: runs go to the deployed version, whose caching no client can rewrite
    assert tasks["train"]["cachingOptions"].get("enableCache", False) is False
    executors = spec["deploymentSpec"]["executors"]
    train_resources = executors["exec-train"]["container"]["resources"]
    assert train_resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "resolve-spec" in train_resources["accelerator"]["resourceCount"]
    images = {executor["container"]["image"] for executor in executors.values()}
    assert images and all(":" in image and not image.endswith(":latest") for image in images)


def test_gate_guards_export_and_register(tmp_path):
    spec = next(yaml.safe_load_all(_compiled(tmp_path)[f"{PIPELINE_NAME}.yaml"].read_text()))
    tasks = _tasks(spec)
    conditions = [task for task in tasks.values() if "triggerPolicy" in task]
    (gated,) = [task for task in conditions if "gate" in task["triggerPolicy"]["condition"]]
    guarded = spec["components"][gated["componentRef"]["name"]]["dag"]["tasks"]
    release = {"deploy-canary", "analyze-canary", "promote-or-rollback"}
    assert set(guarded) == {"export-triton", "register"} | release


def _producer(task: dict, parameter: str) -> tuple[str, str]:
    source = task["inputs"]["parameters"][parameter]["taskOutputParameter"]
    return source["producerTask"], source["outputParameterKey"]


def test_release_steps_follow_register_in_order_without_nested_conditions(tmp_path):
    spec = next(yaml.safe_load_all(_compiled(tmp_path)[f"{PIPELINE_NAME}.yaml"].read_text()))
    tasks = _tasks(spec)
    deploy, analysis, finish = (tasks[n] for n in ("deploy-canary", "analyze-canary", "promote-or-rollback"))
    assert _producer(deploy, "version") == ("register", "version")
    assert _producer(deploy, "alias") == ("register", "alias")
    assert _producer(analysis, "deployment") == ("deploy-canary", "Output")
    assert _producer(finish, "decision") == ("analyze-canary", "Output")
    for task in (deploy, analysis, finish):
        # kfp.local cannot run a condition nested in the gate's branch: "no-canary" flows through instead
        assert "triggerPolicy" not in task
        assert task["cachingOptions"].get("enableCache", False) is False
        assert "retryPolicy" not in task  # a retried analysis would send its traffic again
        mode = task["inputs"]["parameters"]["serving_mode"]["componentInputParameter"]
        assert mode.startswith("pipelinechannel--serving_mode")


def test_committed_compiled_pipelines_are_current():
    assert compile_module.stale_files() == [], "run `make compile`"


def test_a_changed_pipeline_is_a_new_version_and_the_previous_one_stays_deployed(tmp_path):
    """KFP versions are immutable: a changed spec under the old name would make Argo CD's sync fail."""
    from kfp import dsl

    manifests = tmp_path / "k8s"
    manifests.mkdir()
    kustomization = (compile_module.MANIFEST_DIR / "kustomization.yaml").read_text()
    (manifests / "kustomization.yaml").write_text(kustomization)
    compile_module.compile_all(tmp_path / "ir", manifests)
    first = _version(manifests)

    @dsl.component(base_image="python:3.11-slim")
    def step():  # unannotated: this module's string annotations are not types to kfp
        print("changed")

    @dsl.pipeline(name=PIPELINE_NAME)
    def changed():
        step()

    compile_module.compile_all(tmp_path / "ir", manifests, {PIPELINE_NAME: changed})
    second = _version(manifests)
    assert second != first and second.startswith(f"{PIPELINE_NAME}-")
    rendered = {(o["kind"], o["metadata"]["name"]) for o in render(manifests)}
    assert {("PipelineVersion", first), ("PipelineVersion", second), ("Pipeline", PIPELINE_NAME)} <= rendered
    compile_module.compile_all(tmp_path / "ir", manifests, {PIPELINE_NAME: changed})  # unchanged
    assert sorted(p.name for p in (manifests / "previous").glob(f"{PIPELINE_NAME}-*")) == [f"{first}.yaml"]


def test_the_committed_previous_versions_are_all_deployed():
    previous = compile_module.MANIFEST_DIR / compile_module.PREVIOUS
    listed = yaml.safe_load((previous / "kustomization.yaml").read_text())["resources"]
    assert listed == sorted(p.name for p in previous.glob("*.yaml") if p.name != "kustomization.yaml")


def _version(manifests) -> str:
    documents = yaml.safe_load_all((manifests / f"{PIPELINE_NAME}.k8s.yaml").read_text())
    return next(d for d in documents if d["kind"] == "PipelineVersion")["metadata"]["name"]
