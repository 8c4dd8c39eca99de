"""A tiny fake of the KFP v2beta1 API: the endpoints `kfp.Client` calls to find a deployed Pipeline and
PipelineVersion by display name, create a run (of that version, or of an uploaded package), list runs by
display name and read a run's state; it records the runs created."""

from __future__ import annotations

import json

from fastapi import FastAPI, Query, Request

from monitoring.retrain_trigger.deployed import DeployedPipeline
from monitoring.retrain_trigger.submitters import DEFAULT_PIPELINE_PACKAGE


def committed_deployment() -> dict[str, list[str]]:
    """What `manifests/pipelines` deploys: the training pipeline with its current version (and, in the
    fake, one earlier version to pick it out from)."""
    current = DeployedPipeline.of_package(DEFAULT_PIPELINE_PACKAGE)
    return {current.name: [f"{current.name}-0000000000", current.version]}


def fake_kfp(runs: list[dict], states: list[str], deployed: dict[str, list[str]] | None = None) -> FastAPI:
    """`deployed`: pipeline display name -> its versions' display names (default: the committed ones)."""
    api, experiments = FastAPI(), []
    deployed = committed_deployment() if deployed is None else deployed

    @api.get("/apis/v2beta1/healthz")
    async def healthz() -> dict:
        return {"multi_user": False}

    @api.get("/apis/v2beta1/experiments")
    async def list_experiments() -> dict:
        return {"experiments": experiments} if experiments else {}

    @api.post("/apis/v2beta1/experiments")
    async def create_experiment(request: Request) -> dict:
        experiments.append({**await request.json(), "experiment_id": "exp-1"})
        return experiments[-1]

    @api.get("/apis/v2beta1/pipelines")
    async def list_pipelines(query: str = Query("", alias="filter")) -> dict:
        names = [n for n in deployed if n == _display_name(query)]
        return {"pipelines": [{"pipeline_id": f"pl-{n}", "display_name": n} for n in names]} if names else {}

    @api.get("/apis/v2beta1/pipelines/{pipeline_id}/versions")
    async def list_versions(pipeline_id: str, query: str = Query("", alias="filter")) -> dict:
        wanted = _display_name(query)
        versions = [v for v in deployed.get(pipeline_id.removeprefix("pl-"), []) if v == wanted]
        listed = [{"pipeline_version_id": f"pv-{v}", "display_name": v} for v in versions]
        return {"pipeline_versions": listed} if listed else {}

    @api.post("/apis/v2beta1/runs")
    async def create_run(request: Request) -> dict:
        runs.append(await request.json())
        return {
            "run_id": f"kfp-run-{len(runs)}",
            "display_name": runs[-1]["display_name"],
            "state": "PENDING",
        }

    @api.get("/apis/v2beta1/runs")
    async def list_runs(experiment_id: str = "", query: str = Query("", alias="filter")) -> dict:
        wanted = _display_name(query)
        listed = [
            {"run_id": f"kfp-run-{i + 1}", "display_name": r["display_name"], "experiment_id": experiment_id}
            for i, r in enumerate(runs)
            if r["display_name"] == wanted and r.get("experiment_id") == experiment_id
        ]
        return {"runs": listed, "total_size": len(listed)} if listed else {}

    @api.get("/apis/v2beta1/runs/{run_id}")
    async def get_run(run_id: str) -> dict:
        return {"run_id": run_id, "state": states.pop(0) if states else "SUCCEEDED"}

    return api


def _display_name(filter_json: str) -> str | None:
    # kfp.Client sends {"predicates": [{"operation": 1, "key": "display_name", "stringValue": ...}]}
    predicates = json.loads(filter_json).get("predicates", []) if filter_json else []
    names = [p.get("stringValue") for p in predicates if p.get("key") == "display_name"]
    return names[0] if names else None


def pipeline_tasks(spec: dict) -> list[dict]:
    """Every task of a pipeline spec, the root DAG's and those of nested DAGs (ParallelFor, If)."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return [task for dag in dags for task in dag["tasks"].values()]
