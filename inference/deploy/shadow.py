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
The comparison (`python -m monitoring.shadow_join`, manifests/shadow-comparator): the shadow's payload logger
posts straight to the comparator (not to the broker, whose drift-detector Triggers match every inference
event: a shadow's events there would be refused as an unknown model, or worse, counted as live traffic), and
two rendered Knative Triggers bring it the live service's events from the broker the live logger posts to
(filter: `type` and the `inferenceservicename` extension, exact matches as Knative eventing v1 filters are).
Both loggers list `X-Request-Id` in `logger.metadataHeaders`: the id Envoy puts on the request and the
mirror copies, by which the comparator joins the two answers (monitoring/shadow_join/join.py says why not
`ce-id`). Refused too: a live logger that batches into object storage (no events to subscribe to) or that
posts anywhere but a Knative broker.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.registry import ModelVersionRef
from inference.deploy.annotations import (
    CANARY_VERSION_KEY,
    LOCAL_REPOSITORY_KEY,
    MODEL_VERSION_KEY,
    REQUEST_ID_HEADER,
    SHADOW_PERCENT_KEY,
    SHADOW_SUFFIX,
    SHADOW_VERSION_KEY,
    STABLE_LOCAL_REPOSITORY_KEY,
    STABLE_VERSION_KEY,
)
from inference.deploy.render import BROKER_INGRESS_HOST
from inference.deploy.standard import DEPLOYMENT_MODE_ANNOTATION, predictor_name
from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE

COMPARATOR_SERVICE = "shadow-comparator"  # manifests/shadow-comparator
DEFAULT_GATEWAY = "kserve/kserve-ingress-gateway"
DEFAULT_INGRESS_DOMAIN = "example.com"
SERVICE_PORT = 80  # KServe's predictor Services (CommonDefaultHttpPort)
_EVENT_TYPES = (REQUEST_TYPE, RESPONSE_TYPE)
_ISVC_HEADERS = ("KServe-Isvc-Name", "KServe-Isvc-Namespace")


@dataclass(frozen=True)
class ShadowObjects:
    live: dict[str, Any]  # the live InferenceService, annotated and its logger listing the request id
    shadow: dict[str, Any]  # `{model}-shadow`, logging to the comparator
    route: dict[str, Any]  # the mirroring HTTPRoute
    triggers: tuple[dict[str, Any], ...]  # the live service's events, from its broker to the comparator

    def all(self) -> list[dict[str, Any]]:
        return [self.live, self.shadow, self.route, *self.triggers]


def render_shadow(
    live: dict[str, Any],
    shadow: ModelVersionRef,
    percent: int = 100,
    gateway: str = DEFAULT_GATEWAY,
    ingress_domain: str = DEFAULT_INGRESS_DOMAIN,
) -> ShadowObjects:
    """The objects of a shadow rollout of `shadow` next to the Standard-mode InferenceService `live` (as
    render_inference_service returns it); `percent` of the infer requests is copied."""
    _check(live, shadow, percent, gateway)
    annotated = copy.deepcopy(live)
    annotated["metadata"]["annotations"][SHADOW_VERSION_KEY] = shadow.version
    annotated["metadata"]["annotations"][SHADOW_PERCENT_KEY] = str(percent)  # the share the router draws
    _log_request_id(annotated["spec"]["predictor"]["logger"])
    route = mirror_route(live, shadow, percent, gateway, ingress_domain)
    triggers = live_event_triggers(live, broker_of(live))
    return ShadowObjects(annotated, shadow_inference_service(live, shadow), route, triggers)


def shadow_object_keys(name: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of what a shadow rollout of model `name` adds, in the order to delete them:
    the mirror first, so no copy is sent to a service being removed."""
    return [
        ("gateway.networking.k8s.io/v1", "HTTPRoute", f"{name}{SHADOW_SUFFIX}-mirror"),
        *[("eventing.knative.dev/v1", "Trigger", _trigger_name(name, kind)) for kind in _EVENT_TYPES],
        ("serving.kserve.io/v1beta1", "InferenceService", f"{name}{SHADOW_SUFFIX}"),
    ]


def _trigger_name(name: str, event_type: str) -> str:
    return f"{name}{SHADOW_SUFFIX}-live-{event_type.rsplit('.', 1)[1]}s"


def comparator_url(namespace: str) -> str:
    return f"http://{COMPARATOR_SERVICE}.{namespace}.svc.cluster.local"


def broker_of(live: dict[str, Any]) -> str | None:
    """The Knative broker the live logger posts to, None when it posts elsewhere."""
    url = urlsplit(str(live["spec"]["predictor"].get("logger", {}).get("url", "")))
    parts = url.path.strip("/").split("/")
    namespace = live["metadata"]["namespace"]
    if url.hostname != BROKER_INGRESS_HOST or len(parts) != 2 or parts[0] != namespace or not parts[1]:
        return None
    return parts[1]


def live_event_triggers(live: dict[str, Any], broker: str | None) -> tuple[dict[str, Any], ...]:
    """One Trigger per logger event type (Knative eventing v1 filters match attributes exactly), for the
    live service's events only."""
    name, namespace = live["metadata"]["name"], live["metadata"]["namespace"]
    return tuple(
        {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": {
                "name": _trigger_name(name, event_type),
                "namespace": namespace,
                "labels": dict(live["metadata"].get("labels", {})),
            },
            "spec": {
                "broker": broker,
                "filter": {"attributes": {"type": event_type, "inferenceservicename": name}},
                "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": COMPARATOR_SERVICE}},
            },
        }
        for event_type in _EVENT_TYPES
    )


def _log_request_id(logger: dict[str, Any]) -> None:
    listed = list(logger.get("metadataHeaders") or [])
    logger["metadataHeaders"] = listed if REQUEST_ID_HEADER in listed else [*listed, REQUEST_ID_HEADER]


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
    # straight to the comparator, each event (a batching store's fields do not carry over)
    logger = predictor["logger"] = {
        key: value for key, value in predictor["logger"].items() if key in ("metadataAnnotations",)
    }
    logger |= {"mode": "all", "url": comparator_url(metadata["namespace"])}
    _log_request_id(logger)
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
    elif live["spec"]["predictor"].get("logger", {}).get("storage"):
        problem = (
            "the live logger batches into object storage: the shadow comparator needs its events posted to a"
            " Knative broker"
        )
    elif broker_of(live) is None:
        url = live["spec"]["predictor"].get("logger", {}).get("url")
        problem = f"the live logger posts to {url!r}, not a Knative broker: the comparator cannot subscribe"
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
