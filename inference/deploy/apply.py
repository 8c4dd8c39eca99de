"""Where rendered objects go: the Kubernetes API (cluster) or a folder (local mode and tests).

Server-side apply, not a merge patch: the API server then removes fields this field manager set before
and no longer sends, which is how promotion drops `canaryTrafficPercent` without a separate JSON patch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml

from core.paths import write_text_atomically

FIELD_MANAGER = "mlops-loop-deploy"


class Applier(Protocol):
    """Creates or updates objects; `get` returns None when the object does not exist."""

    def apply(self, obj: dict[str, Any]) -> None: ...

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        """Remove the object; False when it did not exist."""
        ...


class FileApplier:
    """Writes each object to `<root>/<namespace>/<kind>-<name>.yaml` (lower-case kind), atomically, so a
    reader (local mode's router) never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, kind: str, name: str, namespace: str) -> Path:
        return self.root / namespace / f"{kind.lower()}-{name}.yaml"

    def apply(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        path = self.path_for(obj["kind"], metadata["name"], metadata["namespace"])
        write_text_atomically(path, yaml.safe_dump(obj, sort_keys=False))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        path = self.path_for(kind, name, namespace)
        if not path.is_file():
            return None
        return yaml.safe_load(path.read_text())

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        path = self.path_for(kind, name, namespace)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed


class KubernetesApplier:
    """Server-side applies objects through the `kubernetes` dynamic client (kubeconfig or in-cluster)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def apply(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        self._dynamic().server_side_apply(
            self._resource(obj["apiVersion"], obj["kind"]),
            body=obj,
            name=metadata["name"],
            namespace=metadata.get("namespace"),
            field_manager=FIELD_MANAGER,
            # This tool owns the rendered fields; a hand edit must not block a rollback.
            force_conflicts=True,
        )

    def get(self, kind: str, name: str, namespace: str, api_version: str | None = None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self._resource(api_version or _API_VERSIONS.get(kind, ""), kind)
        try:
            return self._dynamic().get(resource, name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:  # a kind the API server does not serve (its CRD not installed) has no object to delete
            self._dynamic().delete(self._resource(api_version, kind), name=name, namespace=namespace)
        except (NotFoundError, ResourceNotFoundError):
            return False
        return True

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dynamic().resources.get(api_version=api_version, kind=kind)

    def _dynamic(self) -> Any:
        if self._client is None:
            self._client = _connect()
        return self._client


_API_VERSIONS = {
    "InferenceService": "serving.kserve.io/v1beta1",
    "ServingRuntime": "serving.kserve.io/v1alpha1",
}


def _connect() -> Any:
    from kubernetes import client, config, dynamic

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except config.ConfigException as error:
            raise RuntimeError(f"deploy: no in-cluster config and no usable kubeconfig: {error}") from None
    return dynamic.DynamicClient(client.ApiClient())
