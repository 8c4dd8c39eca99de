"""What a registry alias points at, in the terms serving needs: the Triton repository URIs of a version.

KServe's storage initializer reads s3://, gs://, pvc://, http(s):// and friends, but not `models:/` and
not `mlflow-artifacts:/` (the proxied URI a tracking server started with `--serve-artifacts` hands out).
So the alias is resolved to a version, the version's `triton_uri` tag to its repository, and a proxied
URI is rewritten onto the store behind the proxy (`$MLFLOW_ARTIFACTS_DESTINATION`, the same value the
MLflow server is started with).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from mlflow.entities.model_registry import ModelVersion

from core.registry import get_alias_version

TRITON_URI_TAG = "triton_uri"
CLUSTER_REPOSITORY = "cluster"
LOCAL_REPOSITORY = "local"
ARTIFACTS_DESTINATION_ENV = "MLFLOW_ARTIFACTS_DESTINATION"
_PROXIED_SCHEME = "mlflow-artifacts"


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered version of a model and where its Triton repositories are."""

    name: str
    version: str
    storage_uri: str
    """The cluster repository (`<triton_uri>/cluster`), for the InferenceService's storageUri."""
    local_repository_uri: str
    """The Python-backend repository (`<triton_uri>/local`), for local mode's Triton."""


def resolve_alias(name: str, alias: str, artifacts_destination: str | None = None) -> ModelVersionRef | None:
    """The version `alias` of model `name` points at, or None when the alias (or the model) is unset."""
    version = get_alias_version(name, alias)
    if version is None:
        return None
    return version_ref(version, artifacts_destination)


def version_ref(version: ModelVersion, artifacts_destination: str | None = None) -> ModelVersionRef:
    """A registered version as a ModelVersionRef; raises if it was registered without a Triton repository."""
    triton_uri = (version.tags or {}).get(TRITON_URI_TAG)
    if not triton_uri:
        raise LookupError(
            f"mlflow: {version.name} version {version.version} has no {TRITON_URI_TAG!r} tag "
            "(registered without a Triton repository); it cannot be served"
        )
    base = storage_location(triton_uri.rstrip("/"), artifacts_destination)
    return ModelVersionRef(
        name=version.name,
        version=str(version.version),
        storage_uri=f"{base}/{CLUSTER_REPOSITORY}",
        local_repository_uri=f"{base}/{LOCAL_REPOSITORY}",
    )


def storage_location(artifact_uri: str, artifacts_destination: str | None = None) -> str:
    """`artifact_uri` as a URI the storage initializer can read: proxied URIs move onto the real store."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != _PROXIED_SCHEME:
        return artifact_uri
    destination = artifacts_destination or os.environ.get(ARTIFACTS_DESTINATION_ENV)
    if not destination:
        raise ValueError(
            f"deploy: {artifact_uri} is served through the MLflow artifact proxy; set "
            f"{ARTIFACTS_DESTINATION_ENV} (or --artifacts-destination) to the store behind it"
        )
    # mlflow-artifacts:/a/b and mlflow-artifacts://host:port/a/b both map to <destination>/a/b.
    return f"{destination.rstrip('/')}/{parsed.path.lstrip('/')}"
