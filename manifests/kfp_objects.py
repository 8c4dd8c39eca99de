"""Check KFP's Kubernetes-native `Pipeline` and `PipelineVersion` with the schemas the kfp packages ship.

KFP's CRD (`pipelines.kubeflow.org/v2beta1`) is published only in the kubeflow/pipelines repository, which
the build machine cannot reach (manifests/schemas/README.md). Nearly all of a `PipelineVersion` lives in two
fields that the CRD leaves open (`x-kubernetes-preserve-unknown-fields`) and that KFP's API server parses
into protobuf messages. Those messages ship in installed packages, so this module checks them strictly
(unknown fields and wrong types fail):

- `spec.pipelineSpec` as `ml_pipelines.PipelineSpec` (kfp-pipeline-spec);
- `spec.platformSpec` as `ml_pipelines.PlatformSpec`, and each Kubernetes executor config in it as
  `kfp_kubernetes.KubernetesExecutorConfig` (kfp-kubernetes).

Around them it checks what a rendered overlay can break on its own: names are DNS-1123 subdomains (the
API server's rule for object names), the spec keeps to the fields the kfp compiler writes, and a version's
`pipelineName` names a `Pipeline` rendered into the same namespace (a kustomize `namePrefix` renames the
`Pipeline` but not this reference).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from importlib import metadata

API_VERSION = "pipelines.kubeflow.org/v2beta1"
KINDS = ("Pipeline", "PipelineVersion")
# The spec fields of KFP's v2beta1 Go types; the kfp compiler writes a subset of them.
SPEC_FIELDS = {
    "Pipeline": {"displayName", "description"},
    "PipelineVersion": {
        "displayName",
        "description",
        "pipelineName",
        "pipelineSpec",
        "platformSpec",
        "codeSourceURL",
        "pipelineSpecURI",
    },
}
PACKAGES = ("kfp-pipeline-spec", "kfp-kubernetes")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def schema_sources() -> dict[str, str]:
    """The installed package versions the protobuf schemas come from (recorded next to the checks)."""
    return {package: metadata.version(package) for package in PACKAGES}


def is_kfp_object(obj: dict) -> bool:
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") in KINDS


def kfp_object_problems(objects: Iterable[dict]) -> list[str]:
    """One line per problem in the rendered KFP objects among `objects` (others are ignored)."""
    kfp_objects = [obj for obj in objects if is_kfp_object(obj)]
    pipelines = {
        (_namespace(obj), obj["metadata"].get("name")) for obj in kfp_objects if obj["kind"] == "Pipeline"
    }
    problems = []
    for obj in kfp_objects:
        where = f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
        problems += [f"{where}: {problem}" for problem in _object_problems(obj, pipelines)]
    return problems


def _object_problems(obj: dict, pipelines: set[tuple[str, str]]) -> Iterator[str]:
    name = obj.get("metadata", {}).get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        yield f"metadata.name {name!r} is not a DNS-1123 subdomain (lower case, digits, '-', '.'; <= 253)"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        yield "spec: must be an object"
        return
    unknown = sorted(set(spec) - SPEC_FIELDS[obj["kind"]])
    if unknown:
        known = ", ".join(sorted(SPEC_FIELDS[obj["kind"]]))
        yield f"spec: unknown field(s) {', '.join(unknown)}; {obj['kind']} has {known}"
    for key in sorted(SPEC_FIELDS[obj["kind"]] - {"pipelineSpec", "platformSpec"}):
        if key in spec and not isinstance(spec[key], str):
            yield f"spec.{key}: must be a string"
    if obj["kind"] == "PipelineVersion":
        yield from _version_problems(obj, spec, pipelines)


def _version_problems(obj: dict, spec: dict, pipelines: set[tuple[str, str]]) -> Iterator[str]:
    from kfp.pipeline_spec import pipeline_spec_pb2

    if "pipelineSpec" not in spec:
        yield "spec.pipelineSpec: required"
    else:
        yield from _proto_problems("spec.pipelineSpec", spec["pipelineSpec"], pipeline_spec_pb2.PipelineSpec)
    if "platformSpec" in spec:
        yield from _platform_problems(spec["platformSpec"])
    parent = spec.get("pipelineName")
    if (_namespace(obj), parent) not in pipelines:
        yield (
            f"spec.pipelineName {parent!r} names no Pipeline rendered into namespace {_namespace(obj)!r} "
            "(a namePrefix/nameSuffix renames the Pipeline, not this reference)"
        )


def _platform_problems(platform_spec: object) -> Iterator[str]:
    from kfp.kubernetes import kubernetes_executor_config_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    problems = list(_proto_problems("spec.platformSpec", platform_spec, pipeline_spec_pb2.PlatformSpec))
    yield from problems
    if problems:
        return
    executors = platform_spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    for name, config in executors.get("executors", {}).items():
        where = f"spec.platformSpec.platforms.kubernetes.deploymentSpec.executors.{name}"
        yield from _proto_problems(where, config, kubernetes_executor_config_pb2.KubernetesExecutorConfig)


def _proto_problems(where: str, value: object, message_type: type) -> Iterator[str]:
    from google.protobuf import json_format

    if not isinstance(value, dict):
        yield f"{where}: must be an object ({message_type.DESCRIPTOR.full_name})"
        return
    try:
        json_format.ParseDict(value, message_type(), ignore_unknown_fields=False)
    except json_format.ParseError as error:
        yield f"{where}: not a valid {message_type.DESCRIPTOR.full_name}: {' '.join(str(error).split())}"


def _namespace(obj: dict) -> str:
    return obj.get("metadata", {}).get("namespace") or "default"
