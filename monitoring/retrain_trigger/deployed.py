"""Runs of the training pipeline that GitOps deployed, created by id on the KFP API.

The image ships the compiled package (`pipelines/compiled/training-pipeline.yaml`) from the commit it was
built from; the PipelineVersion that commit's manifests deployed is named after that package's hash
(core/pipeline_version.py). A run is created against that Pipeline and PipelineVersion by id, so what
Argo CD synced is what runs; the package upload (`create_run_from_pipeline_package`) is only an explicit
fallback for a KFP without the Kubernetes objects (`--upload-package`).

KFP's Kubernetes-native store lists a `PipelineVersion` object under its `spec.displayName`, which the
compiled manifest sets to the object's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.pipeline_version import pipeline_version_name

EQUALS = 1  # kfp.client.client._FILTER_OPERATIONS["EQUALS"] (the v2beta1 filter's operation enum)


class NotDeployedError(RuntimeError):
    """The KFP API has no Pipeline or PipelineVersion of that name: nothing was started."""


@dataclass(frozen=True)
class DeployedPipeline:
    name: str
    version: str

    @classmethod
    def of_package(cls, package: Path) -> DeployedPipeline:
        """The Pipeline and PipelineVersion names the compiled `package` was deployed under."""
        spec = next(iter(yaml.safe_load_all(Path(package).read_text(encoding="utf-8"))))
        name = spec["pipelineInfo"]["name"]
        return cls(name, pipeline_version_name(name, package))


def run_deployed(
    client: Any, deployed: DeployedPipeline, run_name: str, arguments: dict[str, Any], experiment: str
) -> str:
    """Create a run of the deployed version through `client` (a `kfp.Client`); returns the run id."""
    pipeline_id = client.get_pipeline_id(deployed.name)
    if pipeline_id is None:
        raise NotDeployedError(f"KFP has no pipeline {deployed.name!r}: sync manifests/pipelines first")
    predicate = {"operation": EQUALS, "key": "display_name", "stringValue": deployed.version}
    listed = client.list_pipeline_versions(pipeline_id, filter=json.dumps({"predicates": [predicate]}))
    versions = listed.pipeline_versions or []
    if not versions:
        raise NotDeployedError(
            f"KFP has no version {deployed.version!r} of pipeline {deployed.name!r}: sync Argo CD to the "
            "commit this image was built from"
        )
    experiment_id = client.create_experiment(experiment).experiment_id
    run = client.run_pipeline(
        experiment_id,
        run_name,
        params=arguments,
        pipeline_id=pipeline_id,
        version_id=versions[0].pipeline_version_id,
    )
    return str(run.run_id)
