"""`python -m pipelines.submit` against the tiny fake KFP v2beta1 API (tests/helpers/kfp_api.py): the
run it creates against the deployed PipelineVersion (name, experiment, arguments), the package upload
fallback, and its one-line failures."""

from __future__ import annotations

import re

import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.ports import free_port
from monitoring.retrain_trigger.deployed import DeployedPipeline
from monitoring.retrain_trigger.submitters import DEFAULT_PIPELINE_PACKAGE
from pipelines.submit import main
from tests.helpers.kfp_api import fake_kfp, pipeline_tasks
from tests.helpers.servers import serving_in_thread

pytestmark = [
    pytest.mark.filterwarnings("ignore:This client only works:FutureWarning"),
    pytest.mark.usefixtures("fixture_specs"),  # --models names are checked against the specs
    pytest.mark.timeout(120),  # a fake KFP API in a thread: a hang fails in minutes
]


def submitted(
    argv: list[str], capsys, refuse: bool = False, deployed: dict | None = None
) -> tuple[int, list[dict], str, str]:
    runs: list[dict] = []
    api = fake_kfp(runs, [], deployed)
    if refuse:
        refuse_runs(api)
    with serving_in_thread(api) as url:
        code = main(["--host", url, *argv])
    out, err = capsys.readouterr()
    return code, runs, out, err


def test_runs_the_deployed_version_of_every_model_and_prints_the_run_id(capsys):
    code, runs, out, err = submitted(["--reason", "schedule"], capsys)
    assert code == 0, err
    assert out.strip() == "kfp-run-1" and len(runs) == 1
    body = runs[0]
    assert re.fullmatch(r"scheduled-\d{8}T\d{6}Z", body["display_name"])
    assert body["experiment_id"] == "exp-1"
    # No models argument: the compiled default (every spec) applies.
    assert body["runtime_config"]["parameters"] == {"reason": "schedule"}
    # The version the committed manifests deploy, by id; no spec travels with the run.
    current = DeployedPipeline.of_package(DEFAULT_PIPELINE_PACKAGE)
    assert body["pipeline_version_reference"] == {
        "pipeline_id": f"pl-{current.name}",
        "pipeline_version_id": f"pv-{current.version}",
    }
    assert "pipeline_spec" not in body


def test_every_step_of_the_deployed_pipeline_is_compiled_without_caching():
    """A run by version id cannot rewrite caching: the compiled spec itself must recompute everything."""
    spec = next(iter(yaml.safe_load_all(DEFAULT_PIPELINE_PACKAGE.read_text())))
    executors = [
        t for t in pipeline_tasks(spec) if "dag" not in spec["components"][t["componentRef"]["name"]]
    ]
    assert len(executors) > 5
    assert {task.get("cachingOptions", {}).get("enableCache", False) for task in executors} == {False}


def test_a_version_argo_cd_has_not_synced_is_one_line_and_starts_nothing(capsys):
    code, runs, _, err = submitted([], capsys, deployed={"training-pipeline": ["training-pipeline-0ld"]})
    assert code == 1 and runs == []
    current = DeployedPipeline.of_package(DEFAULT_PIPELINE_PACKAGE).version
    assert err.count("\n") == 1 and f"KFP has no version {current!r}" in err and "sync Argo CD" in err
    code, runs, _, err = submitted([], capsys, deployed={})
    assert code == 1 and "KFP has no pipeline 'training-pipeline'" in err


def test_the_package_upload_is_an_explicit_fallback(capsys):
    code, runs, _, err = submitted(["--upload-package"], capsys, deployed={})
    assert code == 0, err
    # kfp's client sends a package with a platform spec as {pipeline_spec, platform_spec} (kfp 2.17
    # client.py _PipelineDoc.to_dict): the steps' ConfigMap and Secret injections travel with the upload.
    sent = runs[0]["pipeline_spec"]
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "training-pipeline"
    executors = sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-load-features"]["configMapAsEnv"][0]["configMapName"] == "mlops-platform-config"


def test_models_and_experiment_are_passed_through(capsys):
    argv = ["--models", "conversion-mlp, conversion-sklearn", "--reason", "manual backfill"]
    argv += ["--experiment", "weekly", "--package", str(DEFAULT_PIPELINE_PACKAGE)]
    runs: list[dict] = []
    experiments: list[dict] = []
    api = fake_kfp(runs, [])
    record_experiment_names(api, experiments)
    with serving_in_thread(api) as url:
        assert main(["--host", url, *argv]) == 0, capsys.readouterr().err
    parameters = runs[0]["runtime_config"]["parameters"]
    assert parameters == {"reason": "manual backfill", "models": ["conversion-mlp", "conversion-sklearn"]}
    assert [e["display_name"] for e in experiments] == ["weekly"]


def record_experiment_names(api: FastAPI, seen: list[dict]) -> None:
    """Wraps the fake's create-experiment route so the test sees the experiment's name."""

    @api.middleware("http")
    async def remember(request: Request, call_next):
        if request.method == "POST" and request.url.path == "/apis/v2beta1/experiments":
            seen.append(await request.json())
        return await call_next(request)


def test_unreachable_host_exits_2_with_one_line(capsys):
    host = f"http://127.0.0.1:{free_port()}"
    assert main(["--host", host]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--host {host}: KFP API unreachable" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--models", "no-such-model"], "--models:"),
        (["--models", " , "], "--models: no model names given"),
        (["--package", "missing/pipeline.yaml"], "--package missing/pipeline.yaml: not found"),
    ],
)
def test_bad_flags_exit_2_before_anything_is_submitted(argv, expected, capsys):
    code, runs, _, err = submitted(argv, capsys)
    assert code == 2 and runs == []
    assert err.count("\n") == 1 and expected in err


def test_missing_host_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--reason", "x"])
    assert exit_info.value.code == 2 and "--host" in capsys.readouterr().err


def refuse_runs(api: FastAPI) -> None:
    """The API server answers 500 to every create-run, as KFP does when its database is away."""

    @api.middleware("http")
    async def refuse(request: Request, call_next):
        if request.method == "POST" and request.url.path == "/apis/v2beta1/runs":
            return JSONResponse({"error": "database unavailable", "code": 13}, status_code=500)
        return await call_next(request)


def test_a_refused_run_exits_1(capsys):
    code, runs, _, err = submitted([], capsys, refuse=True)
    assert code == 1 and runs == []
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: KFP at http://127.0.0.1:") and "cannot create run scheduled-" in last
