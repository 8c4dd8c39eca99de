"""Shadow rollout on a cluster: a challenger gets a copy of the live traffic through the Gateway API, and its
answers never reach a client.

Mechanism: a Gateway API `HTTPRoute` with a `RequestMirror` filter, on KServe's Standard mode (which serves
through the Gateway API, Envoy Gateway here: docs/cluster.md). Read at:
- gateway-api v1.5.1 (commit e7677b70ae75d14a4448fba94870e7deea6cf0ad, the version kserve's go.mod pins at
  master aaac4e294dae2c7b1aa1886447793f3aa1c30912), apis/v1/httproute_types.go: `HTTPRequestMirrorFilter`
  {backendRef, percent | fraction}; "The responses from this backend MUST be ignored by the Gateway"
  (HTTPRouteFilterRequestMirror). Precedence across routes: an "Exact" path match wins over every other
  match ("RegularExpression" precedence is implementation-specific, and KServe's own routes match the
  regular expression `^/.*$`), so this route's Exact match on the infer path takes the infer requests from
  KServe's route and sends them to the same stable Service, plus a copy to the shadow.
- kserve master aaac4e294dae, pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/
  httproute_reconciler.go: KServe's routes (top level `{isvc}`, predictor `{isvc}-predictor`) attach to
  the Gateway `ingress.kserveIngressGateway` (default `kserve/kserve-ingress-gateway`) with hostnames from
  `domainTemplate` (default `{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}`, config/configmap/
  inferenceservice.yaml), set the `KServe-Isvc-Name`/`KServe-Isvc-Namespace` headers, and send to port 80
  of `{isvc}-{predictor.name}-predictor` (pkg/constants/constants.go PredictorServiceName,
  CommonDefaultHttpPort). This route does the same for the live answer, so the client sees no difference.
  KServe owns its own HTTPRoutes (it rewrites them), so the mirror is a separate route this module owns.

What is rendered (`render_shadow`): the live InferenceService with the shadow annotations (version and
percent: what the local router reads; KServe copies InferenceService annotations to the predictor's pods,
so applying it may roll them once), the shadow InferenceService `{model}-shadow` (a Standard-mode
predictor `v<shadow>` on the shadow's storageUri, no canary, its payload logger on), and the mirroring
HTTPRoute. The Triton model name is the model's name in both, so the mirrored path needs no rewrite.

Not rendered, and why (each a one-line refusal):
- Knative mode: Knative's routes are Istio VirtualServices that net-istio owns and rewrites; a second
  VirtualService for the same host would be merged in an undefined order. Shadows need Standard mode.
- Next to a canary: this route would take the infer path from KServe's canary-weighted route.
- Behind the Feast transformer: clients call the transformer, so the copy would need the shadow's own
  transformer, which KServe starts with `--model_name {model}-shadow`, a model Triton does not serve.
- gRPC: KServe's gRPC rule matches by header regex on one port; only the REST infer path is mirrored.
Delete the shadow's two objects before the canary starts: the shadow's pods carry the challenger's version
label, so Triton series scraped from them would add to the version the canary analysis judges.
The comparison on a cluster would read both services' payload events (inference/router/shadow_compare.py
says how); that feeder is not built.
"""

from __future__ import annotations

import copy
from typing import Any

from core.registry import ModelVersionRef
from inference.deploy.annotations import (
    CANARY_VERSION_KEY,
    LOCAL_REPOSITORY_KEY,
    MODEL_VERSION_KEY,
    SHADOW_PERCENT_KEY,
    SHADOW_VERSION_KEY,
    STABLE_LOCAL_REPOSITORY_KEY,
    STABLE_VERSION_KEY,
)
from inference.deploy.standard import DEPLOYMENT_MODE_ANNOTATION, predictor_name

SHADOW_SUFFIX = "-shadow"
DEFAULT_GATEWAY = "kserve/kserve-ingress-gateway"
DEFAULT_INGRESS_DOMAIN = "example.com"
SERVICE_PORT = 80  # KServe's predictor Services (CommonDefaultHttpPort)
_ISVC_HEADERS = ("KServe-Isvc-Name", "KServe-Isvc-Namespace")


def render_shadow(
    live: dict[str, Any],
    shadow: ModelVersionRef,
    percent: int = 100,
    gateway: str = DEFAULT_GATEWAY,
    ingress_domain: str = DEFAULT_INGRESS_DOMAIN,
) -> list[dict[str, Any]]:
    """[live InferenceService annotated, shadow InferenceService, mirroring HTTPRoute] for `shadow` next to
    the Standard-mode InferenceService `live` (as render_inference_service returns it); `percent` of the
    infer requests is copied."""
    _check(live, shadow, percent, gateway)
    annotated = copy.deepcopy(live)
    annotated["metadata"]["annotations"][SHADOW_VERSION_KEY] = shadow.version
    annotated["metadata"]["annotations"][SHADOW_PERCENT_KEY] = str(percent)  # the share the router draws
    route = mirror_route(live, shadow, percent, gateway, ingress_domain)
    return [annotated, shadow_inference_service(live, shadow), route]


def shadow_inference_service(live: dict[str, Any], shadow: ModelVersionRef) -> dict[str, Any]:
    service = copy.deepcopy(live)
    metadata = service["metadata"]
    metadata["name"] = metadata["name"] + SHADOW_SUFFIX
    # it serves one version: none of the live rollout's annotations, or a reader would route by them
    for key in (SHADOW_VERSION_KEY, CANARY_VERSION_KEY, STABLE_VERSION_KEY, STABLE_LOCAL_REPOSITORY_KEY):
        metadata["annotations"].pop(key, None)
    metadata["annotations"] |= {
        MODEL_VERSION_KEY: shadow.version,
        LOCAL_REPOSITORY_KEY: shadow.local_repository_uri,
    }
    metadata["labels"] |= {"app.kubernetes.io/version": shadow.version, MODEL_VERSION_KEY: shadow.version}
    predictor = service["spec"]["predictor"]
    predictor["name"] = predictor_name(shadow.version)
    predictor["model"]["storageUri"] = shadow.storage_uri
    predictor["annotations"] = {**predictor.get("annotations", {}), MODEL_VERSION_KEY: shadow.version}
    predictor["labels"] = {
        **predictor.get("labels", {}),
        "app.kubernetes.io/version": shadow.version,
        MODEL_VERSION_KEY: shadow.version,
    }
    return service


def mirror_route(
    live: dict[str, Any], shadow: ModelVersionRef, percent: int, gateway: str, ingress_domain: str
) -> dict[str, Any]:
    name, namespace = live["metadata"]["name"], live["metadata"]["namespace"]
    gateway_namespace, gateway_name = gateway.split("/")
    stable = _service(namespace, f"{name}-{live['spec']['predictor']['name']}-predictor")
    mirrored = _service(namespace, f"{name}{SHADOW_SUFFIX}-{predictor_name(shadow.version)}-predictor")
    headers = [
        {"name": key, "value": value} for key, value in zip(_ISVC_HEADERS, (name, namespace), strict=True)
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": f"{name}{SHADOW_SUFFIX}-mirror",
            "namespace": namespace,
            "labels": {**live["metadata"].get("labels", {}), MODEL_VERSION_KEY: shadow.version},
            "annotations": {SHADOW_VERSION_KEY: shadow.version},
        },
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "namespace": gateway_namespace,
                    "name": gateway_name,
                }
            ],
            # the top-level and the predictor host KServe's routes serve (default domainTemplate)
            "hostnames": [f"{host}-{namespace}.{ingress_domain}" for host in (name, f"{name}-predictor")],
            "rules": [
                {
                    "matches": [{"path": {"type": "Exact", "value": f"/v2/models/{name}/infer"}}],
                    "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": headers}},
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": mirrored, "percent": percent},
                        },
                    ],
                    "backendRefs": [stable],
                }
            ],
        },
    }


def _service(namespace: str, name: str) -> dict[str, Any]:
    return {"kind": "Service", "name": name, "namespace": namespace, "port": SERVICE_PORT}


def _check(live: dict[str, Any], shadow: ModelVersionRef, percent: int, gateway: str) -> None:
    name = live["metadata"]["name"]
    mode = live["metadata"].get("annotations", {}).get(DEPLOYMENT_MODE_ANNOTATION)
    live_version = live["metadata"].get("annotations", {}).get(MODEL_VERSION_KEY)
    problem = None
    if mode != "Standard":
        problem = f"a shadow needs KServe Standard mode (Gateway API mirror); this one is {mode or 'Knative'}"
    elif live["spec"].get("canary"):
        problem = "a shadow runs before a canary, not beside one (the mirror would bypass the canary weights)"
    elif live["spec"].get("transformer"):
        problem = (
            "no shadow behind the Feast transformer: the shadow's own transformer would ask Triton for "
            f"the model {name}{SHADOW_SUFFIX}, which it does not serve"
        )
    elif shadow.name != name or shadow.version == live_version:
        problem = f"shadow {shadow.name} version {shadow.version} is not another version of {name}"
    elif isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        problem = f"shadow percent must be an integer in 0..100, got {percent!r}"
    elif gateway.count("/") != 1 or not all(gateway.split("/")):
        problem = f"gateway must be namespace/name, got {gateway!r}"
    elif len(name + SHADOW_SUFFIX + "-" + predictor_name(shadow.version) + "-predictor") > 63:
        problem = "the shadow's Service name is longer than a 63-character DNS label"
    if problem is not None:
        raise ValueError(f"deploy: {name}: {problem}")
