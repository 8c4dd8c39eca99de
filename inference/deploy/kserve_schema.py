"""Check rendered KServe objects against the KServe SDK's generated models (no cluster needed).

The `kserve` package's models (`V1beta1InferenceService`, ...) are generated from the CRDs' OpenAPI
schema, with Kubernetes types (`V1ObjectMeta`, `V1Toleration`, ...) from the `kubernetes` client. Walking
a rendered dict through them checks:
- every field name exists at its place (the generated deserializer silently drops unknown ones, which is
  why this walks the schema itself instead of calling `ApiClient.deserialize`);
- value kinds: objects, lists, maps, strings, integers, booleans;
- required fields the generated constructors enforce (e.g. a container's `name`);
- the round trip: the models serialized back equal the input, so nothing was dropped or renamed.
It does not check enum values (`protocolVersion`, `logger.mode`), numeric ranges (`canaryTrafficPercent`
within 0..100), Kubernetes quantities, CEL rules or anything KServe's admission webhook decides (a runtime
that supports the model format, one predictor framework set); only an API server with the CRDs does.

`kserve` is imported inside the functions: it cannot share a process with `tritonclient.grpc` (both
register the same protobuf symbols), and importing it takes over a second.
"""

from __future__ import annotations

import re
from typing import Any

_SDK_CLASSES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
}
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
    # Knative's apis.VolatileTime and apis.URL marshal to JSON strings (knative.dev/pkg apis), though the
    # SDK generated wrapper models for them
    "KnativeVolatileTime": (str,),
    "KnativeURL": (str,),
}
_LIST = re.compile(r"^list\[(.*)\]$")
_DICT = re.compile(r"^dict\(([^,]*), (.*)\)$")


def sdk_problems(obj: dict[str, Any]) -> list[str]:
    """One line per place `obj` breaks the KServe SDK's schema (empty when it fits and round-trips)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    class_name = _SDK_CLASSES.get(key)
    if class_name is None:
        return [f"{key[0]}/{key[1]}: not a KServe kind this check knows"]
    problems: list[str] = []
    model = _build(obj, class_name, obj["kind"], problems)
    if not problems:
        from kubernetes.client import ApiClient

        if _without_filled_defaults(ApiClient().sanitize_for_serialization(model), obj) != obj:
            problems.append(f"{obj['kind']}: changes on a round trip through the SDK models")
    return problems


def _without_filled_defaults(serialized: Any, original: Any) -> Any:
    """`serialized` less the empty strings the generated constructors fill in where `original` has no
    field (V1beta1ModelSpec defaults `name` to "", which the CRD does not require and KServe's webhook
    wants empty)."""
    if isinstance(serialized, dict) and isinstance(original, dict):
        return {
            k: _without_filled_defaults(v, original.get(k))
            for k, v in serialized.items()
            if k in original or v != ""
        }
    if isinstance(serialized, list) and isinstance(original, list) and len(serialized) == len(original):
        return [_without_filled_defaults(s, o) for s, o in zip(serialized, original, strict=True)]
    return serialized


def _build(value: Any, type_name: str, path: str, problems: list[str]) -> Any:
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return None
        return [_build(item, match[1], f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return None
        return {k: _build(v, match[2], f"{path}.{k}", problems) for k, v in value.items()}
    if type_name in _PRIMITIVES:
        return _primitive(value, type_name, path, problems)
    return _build_model(value, type_name, path, problems)


def _primitive(value: Any, type_name: str, path: str, problems: list[str]) -> Any:
    wrong_bool = isinstance(value, bool) and type_name in ("int", "float")
    if wrong_bool or not isinstance(value, _PRIMITIVES[type_name]):
        problems.append(f"{path}: expected {type_name}, got {type(value).__name__}")
    return value


def _build_model(value: Any, type_name: str, path: str, problems: list[str]) -> Any:
    model_class = _model_class(type_name)
    if model_class is None:
        problems.append(f"{path}: the SDK has no model {type_name}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return None
    attributes = {json_name: attr for attr, json_name in model_class.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        if key not in attributes:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        attr = attributes[key]
        kwargs[attr] = _build(item, model_class.openapi_types[attr], f"{path}.{key}", problems)
    try:
        return model_class(**kwargs)
    except ValueError as error:  # the generated constructors' required-field checks
        problems.append(f"{path}: {error}")
        return None


def _model_class(type_name: str) -> type | None:
    import importlib

    import kserve.models
    import kubernetes.client.models

    found = getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name, None)
    if found is None:  # the Knative status models are generated but not exported from kserve.models
        module = re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()
        try:
            found = getattr(importlib.import_module(f"kserve.models.{module}"), type_name, None)
        except ImportError:
            return None
    return found
