"""The committed compiled training pipeline (IR), read as KFP's API server reads it: the pipeline spec and
the platform spec (each step's Kubernetes executor config), by step (task) name."""

from __future__ import annotations

import yaml

from core.paths import REPO_ROOT

IR = REPO_ROOT / "pipelines" / "compiled" / "training-pipeline.yaml"


def pipeline_spec() -> dict:
    return next(yaml.safe_load_all(IR.read_text()))


def executor_configs() -> dict[str, dict]:
    """Each step's Kubernetes executor config (the platform spec), keyed by step name."""
    _, platform = yaml.safe_load_all(IR.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {label.removeprefix("exec-"): config for label, config in executors.items()}


def injected_variables(config: dict) -> list[tuple[str, str, str, bool]]:
    """(source, key, variable, optional) for each variable an executor config injects; source is
    `configmap/<name>` or `secret/<name>`."""
    found = []
    for ref in config.get("configMapAsEnv", []):
        source = f"configmap/{ref['configMapName']}"
        found += [(source, e["configMapKey"], e["envVar"], ref["optional"]) for e in ref["keyToEnv"]]
    for ref in config.get("secretAsEnv", []):
        source = f"secret/{ref['secretName']}"
        found += [(source, e["secretKey"], e["envVar"], ref["optional"]) for e in ref["keyToEnv"]]
    return found
