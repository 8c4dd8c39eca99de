"""Render kustomize targets and check the objects: policy (security, labels, Secrets) and schemas.

`python -m manifests.validate kustomize/overlays/dev` prints one line per violation and exits 1 if any.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from manifests.kfp_objects import kfp_object_problems

REQUIRED_LABELS = tuple(
    f"app.kubernetes.io/{key}" for key in ("name", "instance", "component", "part-of", "version")
)
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Kinds kubernetes-validate has no schema for (CRDs); they are checked against manifests/schemas/.
CUSTOM_KINDS = {"PrometheusRule", "ServiceMonitor", "PodMonitor", "AlertmanagerConfig", "Application"}
CUSTOM_KINDS |= {"ApplicationSet"}
CUSTOM_KINDS |= {"Pipeline", "PipelineVersion", "ServingRuntime", "InferenceService", "Trigger"}
KUBERNETES_VERSION = "1.32.0"


class MissingDependencyError(RuntimeError):
    """A validator package is not installed in the platform environment."""


class _KubectlLoader(yaml.SafeLoader):
    """PyYAML reads a bare `=` (kubectl prints AlertmanagerConfig's `matchType: =` unquoted) as YAML 1.1's
    `value` tag and cannot build it; every other YAML reader (kubectl, Go) sees the string "="."""


_KubectlLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def render(target: Path) -> list[dict]:
    """`kubectl kustomize TARGET` parsed into objects; raises with kubectl's message if it fails."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {target} failed: {result.stderr.strip()}")
    return [obj for obj in yaml.load_all(result.stdout, Loader=_KubectlLoader) if obj]


def describe(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_spec(obj: dict) -> dict | None:
    """The pod template's spec of a workload, None for other kinds."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in WORKLOAD_KINDS:
        return spec["template"]["spec"]
    return None


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec.get("containers", [])


def label_violations(obj: dict) -> Iterator[str]:
    labels = obj["metadata"].get("labels") or {}
    missing = [key for key in REQUIRED_LABELS if not labels.get(key)]
    if missing:
        yield f"{describe(obj)}: missing labels {', '.join(missing)}"


def container_violations(obj: dict, spec: dict, container: dict) -> Iterator[str]:
    where = f"{describe(obj)} container {container['name']}"
    pod_ctx = spec.get("securityContext", {})
    ctx = {**pod_ctx, **container.get("securityContext", {})}
    if ctx.get("runAsNonRoot") is not True or not ctx.get("runAsUser"):
        yield f"{where}: must set runAsNonRoot: true and a non-zero runAsUser"
    if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
        yield f"{where}: readOnlyRootFilesystem must be true"
    if container.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
        yield f"{where}: allowPrivilegeEscalation must be false"
    if container.get("securityContext", {}).get("capabilities", {}).get("drop") != ["ALL"]:
        yield f"{where}: capabilities.drop must be [ALL]"
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield f"{where}: seccompProfile must be RuntimeDefault"
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(resources.get(part, {})):
            yield f"{where}: resources.{part} needs cpu and memory"
    yield from image_violations(where, container.get("image", ""))
    # Probes belong to long-running containers: not Jobs, and not plain init containers (the API server
    # refuses probes on an init container unless it is a restartable sidecar).
    is_init = container in spec.get("initContainers", []) and container.get("restartPolicy") != "Always"
    if obj["kind"] not in ("CronJob", "Job") and not is_init:
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in container:
                yield f"{where}: {probe} missing"


def image_violations(where: str, image: str) -> Iterator[str]:
    name = image.split("@")[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if "@sha256:" not in image and tag in ("", "latest"):
        yield f"{where}: image {image!r} is not pinned (tag or digest, never latest)"


def policy_violations(objects: Iterable[dict]) -> list[str]:
    """Every security, label and pinning rule the bases promise, as one line per violation."""
    found: list[str] = []
    for obj in objects:
        found.extend(label_violations(obj))
        if obj["kind"] == "ServingRuntime":  # KServe copies these containers into every predictor pod
            for container in containers(obj["spec"]):
                found.extend(container_violations(obj, obj["spec"], container))
            continue
        spec = pod_spec(obj)
        if spec is None:
            continue
        if spec.get("automountServiceAccountToken") is not False:
            found.append(f"{describe(obj)}: automountServiceAccountToken must be false")
        for container in containers(spec):
            found.extend(container_violations(obj, spec, container))
    return found


def referenced_secrets(objects: Iterable[dict]) -> set[str]:
    """Names of Secrets the workloads read: env secretKeyRef, envFrom secretRef, secret/projected volumes,
    and the pipeline steps' `secretAsEnv` (a PipelineVersion's platform spec)."""
    names: set[str] = set()
    for obj in objects:
        if obj["kind"] == "AlertmanagerConfig":
            names.update(alertmanager_config_secrets(obj))
        for executor in pipeline_executors(obj).values():
            names.update(ref["secretName"] for ref in executor.get("secretAsEnv", []))
        spec = pod_spec(obj)
        if spec is None:
            continue
        for container in containers(spec):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
            names.update(
                src["secretRef"]["name"] for src in container.get("envFrom", []) if "secretRef" in src
            )
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
    return names


def pipeline_executors(obj: dict) -> dict[str, dict]:
    """A PipelineVersion's Kubernetes executor configs by executor label (others: none)."""
    if obj["kind"] != "PipelineVersion":
        return {}
    platforms = obj["spec"].get("platformSpec", {}).get("platforms", {})
    return platforms.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})


def alertmanager_config_secrets(obj: dict) -> set[str]:
    """Secrets an AlertmanagerConfig's receivers name (the Operator reads them from its namespace)."""
    names = set()
    for receiver in obj["spec"].get("receivers", []):
        for webhook in receiver.get("webhookConfigs", []):
            authorization = webhook.get("httpConfig", {}).get("authorization", {})
            if "credentials" in authorization:
                names.add(authorization["credentials"]["name"])
    return names


def schema_violations(objects: Iterable[dict], version: str = KUBERNETES_VERSION) -> list[str]:
    """Core kinds against Kubernetes' OpenAPI schemas (kubernetes-validate, strict: unknown fields fail)."""
    try:
        import kubernetes_validate
    except ImportError as error:
        raise MissingDependencyError(
            "kubernetes-validate is missing from .venv: add it to platform.requirements.in; `make install`"
        ) from error
    found = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            found.append(f"{describe(obj)}: {path}: {error.message}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", type=Path, help="kustomize directories (overlays)")
    parser.add_argument(
        "--schemas",
        action="store_true",
        help="also validate core kinds (kubernetes-validate) and KFP objects (kfp protobuf schemas)",
    )
    args = parser.parse_args(argv)
    failures = []
    for target in args.targets:
        objects = render(target)
        failures += [f"{target}: {line}" for line in policy_violations(objects)]
        if args.schemas:
            failures += [f"{target}: {line}" for line in schema_violations(objects)]
            failures += [f"{target}: {line}" for line in kfp_object_problems(objects)]
    print("\n".join(failures) or "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
