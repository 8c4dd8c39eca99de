"""The namespace and metadata `python -m inference.deploy` writes on every InferenceService it renders, and
the local router reads back: which model, which version the newest revision serves, and during a canary which
version is stable and which is the canary (with their local Triton repositories)."""

NAMESPACE = "mlops"
"""The namespace the kustomize overlays deploy into and deploy writes InferenceServices to. On a cluster
the Prometheus Operator labels every scraped series with it (`namespace`), and the alert route matches it."""

ANNOTATION_PREFIX = "serving.mlops-loop.io/"
MODEL_KEY = ANNOTATION_PREFIX + "model"
MODEL_VERSION_KEY = ANNOTATION_PREFIX + "model-version"
"""Label and annotation: the version in storageUri (the newest revision)."""
LOCAL_REPOSITORY_KEY = ANNOTATION_PREFIX + "local-repository"
STABLE_VERSION_KEY = ANNOTATION_PREFIX + "stable-version"
"""During a canary, the version the stable revision serves (wins over MODEL_VERSION_KEY for the router)."""
STABLE_LOCAL_REPOSITORY_KEY = ANNOTATION_PREFIX + "stable-local-repository"
CANARY_VERSION_KEY = ANNOTATION_PREFIX + "canary-version"
SHADOW_VERSION_KEY = ANNOTATION_PREFIX + "shadow-version"
"""A version that gets a copy of the live traffic and whose answers are compared, never returned
(inference/router/shadow.py locally; inference/deploy/shadow.py renders the cluster's mirror)."""
SHADOW_PERCENT_KEY = ANNOTATION_PREFIX + "shadow-percent"
"""The share of live infer requests copied to the shadow, 0..100 (default 100): the `percent` of the
HTTPRoute's RequestMirror filter on a cluster, the share the local router draws."""

SHADOW_SUFFIX = "-shadow"
"""The shadow InferenceService is `<model>-shadow`: the comparator tells its payload events from the live
service's by the `inferenceservicename` KServe's logger sends."""
REQUEST_ID_HEADER = "X-Request-Id"
"""What both services' `logger.metadataHeaders` list during a shadow rollout, so each payload event carries
the id the comparator joins by. Go's canonical form: KServe's agent matches header names verbatim."""
