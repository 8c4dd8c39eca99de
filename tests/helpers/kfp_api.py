"""A tiny fake of the KFP v2beta1 API: just the endpoints `kfp.Client.create_run_from_pipeline_package` and
`get_run` call, recording the runs created."""

from __future__ import annotations

from fastapi import FastAPI, Request


def fake_kfp(runs: list[dict], states: list[str]) -> FastAPI:
    """Just the KFP v2beta1 endpoints `create_run_from_pipeline_package` and `get_run` call."""
    api, experiments = FastAPI(), []

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

    @api.post("/apis/v2beta1/runs")
    async def create_run(request: Request) -> dict:
        runs.append(await request.json())
        return {"run_id": "kfp-run-1", "display_name": runs[-1]["display_name"], "state": "PENDING"}

    @api.get("/apis/v2beta1/runs/{run_id}")
    async def get_run(run_id: str) -> dict:
        return {"run_id": run_id, "state": states.pop(0) if states else "SUCCEEDED"}

    return api


def pipeline_tasks(body: dict) -> list[dict]:
    """Every task of a created run's pipeline spec, the root DAG's and those of nested DAGs (ParallelFor)."""
    spec = body["pipeline_spec"]
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return [task for dag in dags for task in dag["tasks"].values()]
