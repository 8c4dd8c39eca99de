"""What a rendered KServe InferenceService says about routing: the version annotations, the `Route` (stable
and optional canary version with the canary's share, optional shadow version) and `Target` values, Triton's
`<model>__v<version>` names, and `route_from_isvc`/`parse_isvc`/`load_isvc_file`, which read a Route from an
InferenceService and raise `RouteError` naming the file and field (see `inference.router.routing` for the
annotations and Knative semantics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml

from inference.deploy.annotations import (
    CANARY_VERSION_KEY,
    MODEL_VERSION_KEY,
    SHADOW_PERCENT_KEY,
    SHADOW_VERSION_KEY,
    STABLE_VERSION_KEY,
)

VERSION_SEPARATOR = "__v"
Role = Literal["stable", "canary", "shadow"]
# a version becomes part of Triton's model name and a file name: keep it to what both accept
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RouteError(ValueError):
    """An InferenceService that cannot be turned into a route (the message names file and field)."""


class OtherKinds(RouteError):
    """A file whose YAML documents are all of other kinds (e.g. the HTTPRoute and Triggers that
    `python -m inference.deploy shadow --out` writes next to the InferenceService)."""


@dataclass(frozen=True)
class Target:
    """Where one request goes: the public model, its registry version and Triton's name for it."""

    model: str
    version: str
    role: Role
    logged_annotations: tuple[tuple[str, str], ...] = ()
    """What KServe's logger attaches to this revision's events (`ce-annotations`): the pod annotations
    named in the InferenceService's `logger.metadataAnnotations`, with this revision's values."""

    @property
    def triton_name(self) -> str:
        return triton_model_name(self.model, self.version)


@dataclass(frozen=True)
class Route:
    model: str
    stable_version: str
    canary_version: str | None = None
    canary_percent: int = 0
    logged_annotations: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    """`logger.metadataAnnotations` with the InferenceService's values; the version key is per revision.
    Not part of equality: two routes are the same when they split traffic the same way."""
    shadow_version: str | None = None
    """Gets a copy of each live request after it is answered; never answers a client (router/shadow.py)."""
    shadow_percent: int = 100
    """The share of live requests copied to the shadow (the Gateway mirror's `percent`)."""

    @property
    def targets(self) -> list[Target]:
        return [self._stable] if self._canary is None else [self._stable, self._canary]

    def pick(self, draw: float) -> Target:
        """The target for a uniform `draw` in [0, 1): the canary when it falls in the canary's share."""
        if self._canary is not None and draw * 100 < self.canary_percent:
            return self._canary
        return self._stable

    # Built once per route, not per request: `pick` is on the router's request path.
    @cached_property
    def _stable(self) -> Target:
        return self._target(self.stable_version, "stable")

    @cached_property
    def _canary(self) -> Target | None:
        return None if self.canary_version is None else self._target(self.canary_version, "canary")

    def _target(self, version: str, role: Role) -> Target:
        # Each Knative revision's pods keep the annotations of the template they were created from, so
        # the version annotation names the version that revision serves.
        logged = tuple((k, version if k == MODEL_VERSION_KEY else v) for k, v in self.logged_annotations)
        return Target(self.model, version, role, logged)

    @cached_property
    def shadow(self) -> Target | None:
        return None if self.shadow_version is None else self._target(self.shadow_version, "shadow")

    def target_for_version(self, version: str) -> Target | None:
        return next((t for t in self.targets if t.version == version), None)


def triton_model_name(model: str, version: str) -> str:
    return f"{model}{VERSION_SEPARATOR}{version}"


def route_from_isvc(isvc: Mapping[str, Any], where: str = "InferenceService") -> Route:
    """The route an InferenceService dict describes; `where` (a file name) prefixes every error."""
    metadata = _mapping(isvc.get("metadata"), where, "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise RouteError(f"{where}: metadata.name is missing")
    annotations = _mapping(metadata.get("annotations"), where, "metadata.annotations")
    stable_key = STABLE_VERSION_KEY if annotations.get(STABLE_VERSION_KEY) else MODEL_VERSION_KEY
    stable = _version(annotations.get(stable_key), where, stable_key, required=True)
    canary = _version(annotations.get(CANARY_VERSION_KEY), where, CANARY_VERSION_KEY, required=False)
    predictor = _mapping(_mapping(isvc.get("spec"), where, "spec").get("predictor"), where, "spec.predictor")
    percent = predictor.get("canaryTrafficPercent")
    if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int)):
        raise RouteError(f"{where}: spec.predictor.canaryTrafficPercent must be an integer, got {percent!r}")
    if percent is not None and not 0 <= percent <= 100:
        raise RouteError(f"{where}: spec.predictor.canaryTrafficPercent must be in 0..100, got {percent}")
    logged = _logged_annotations(predictor, annotations, where)
    shadow = _shadow_version(annotations.get(SHADOW_VERSION_KEY), where)
    shadow_percent = _shadow_percent(annotations.get(SHADOW_PERCENT_KEY), where)
    if "canary" in isvc["spec"]:
        route = _standard_route(name, isvc["spec"], predictor, stable, logged, where)
    elif canary is None or canary == stable:
        route = Route(name, stable, logged_annotations=logged)
    elif percent is None:  # Knative: without the field the newest revision takes all traffic (promoted)
        route = Route(name, canary, logged_annotations=logged)
    else:
        route = Route(name, stable, canary, percent, logged)
    return _with_shadow(route, shadow, shadow_percent, where)


def _shadow_version(value: Any, where: str) -> str | None:
    field = f"metadata.annotations[{SHADOW_VERSION_KEY!r}]"
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or not _VERSION.match(str(value)):
        raise RouteError(f'{where}: {field} must be a registry version like "4", got {value!r}')
    return str(value)


def _shadow_percent(value: Any, where: str) -> int:
    if value is None or value == "":
        return 100
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 0 <= int(text) <= 100:
        field = f"metadata.annotations[{SHADOW_PERCENT_KEY!r}]"
        raise RouteError(f'{where}: {field} must be an integer percent in 0..100 like "25", got {value!r}')
    return int(text)


def _with_shadow(route: Route, shadow: str | None, percent: int, where: str) -> Route:
    if shadow is None:
        return route
    live = [t.version for t in route.targets]
    if shadow in live:  # a shadow of a live version compares it with itself and doubles its load
        field = f"metadata.annotations[{SHADOW_VERSION_KEY!r}]"
        raise RouteError(f"{where}: {field} names {shadow}, which already serves live traffic")
    return replace(route, shadow_version=shadow, shadow_percent=percent)


def _standard_route(
    name: str,
    spec: Mapping[str, Any],
    predictor: Mapping[str, Any],
    fallback_stable: str,
    logged: tuple[tuple[str, str], ...],
    where: str,
) -> Route:
    """Standard mode: each predictor's own version annotation (inference/deploy/standard.py), the first
    `spec.canary` entry's `trafficPercent` (KServe's HTTPRoute weights it against the stable predictor)."""
    own = _mapping(predictor.get("annotations"), where, "spec.predictor.annotations")
    stable = _version(own.get(MODEL_VERSION_KEY), where, MODEL_VERSION_KEY, required=False) or fallback_stable
    canaries = spec.get("canary") or []
    if not isinstance(canaries, list) or len(canaries) > 1:
        raise RouteError(f"{where}: spec.canary must be a list of at most one entry (deploy renders one)")
    if not canaries:
        return Route(name, stable, logged_annotations=logged)
    entry = _mapping(canaries[0], where, "spec.canary[0]")
    percent = entry.get("trafficPercent")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        field = "spec.canary[0].trafficPercent"
        raise RouteError(f"{where}: {field} must be an integer in 0..100, got {percent!r}")
    canary_predictor = _mapping(entry.get("predictor"), where, "spec.canary[0].predictor")
    field = "spec.canary[0].predictor.annotations"
    version = _mapping(canary_predictor.get("annotations"), where, field).get(MODEL_VERSION_KEY)
    if version in (None, ""):
        raise RouteError(f"{where}: {field}[{MODEL_VERSION_KEY!r}] is missing")
    return Route(name, stable, str(version), percent, logged)


def load_isvc_file(path: str | Path) -> Route:
    """The route of the InferenceService in a YAML file (the first document of that kind)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RouteError(f"{path}: cannot read InferenceService: {exc}".replace("\n", " ")) from exc
    return parse_isvc(text, path)


def parse_isvc(text: str, path: str | Path) -> Route:
    """The route of the InferenceService in YAML `text` read from `path` (named in errors)."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise RouteError(f"{path}: cannot read InferenceService: {exc}".replace("\n", " ")) from exc
    for document in documents:
        if document.get("kind", "InferenceService") == "InferenceService":
            return route_from_isvc(document, str(path))
    if documents:
        raise OtherKinds(
            f"{path}: no InferenceService document, only {sorted({str(d['kind']) for d in documents})}"
        )
    raise RouteError(f"{path}: no InferenceService document")


def _logged_annotations(
    predictor: Mapping[str, Any], annotations: Mapping[str, Any], where: str
) -> tuple[tuple[str, str], ...]:
    # KServe's agent injector passes only the listed annotations the pod has (a missing one is skipped
    # with a warning): kserve v0.20.0 pkg/webhook/admission/pod/agent_injector.go, commit 1fb78105.
    keys = _mapping(predictor.get("logger"), where, "spec.predictor.logger").get("metadataAnnotations") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RouteError(f"{where}: spec.predictor.logger.metadataAnnotations must be a list of strings")
    return tuple((k, str(annotations[k])) for k in keys if annotations.get(k) not in (None, ""))


def _mapping(value: Any, where: str, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RouteError(f"{where}: {field} must be a mapping, got {type(value).__name__}")
    return value


def _version(value: Any, where: str, annotation: str, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise RouteError(f"{where}: metadata.annotations[{annotation!r}] is missing")
        return None
    return str(value)
