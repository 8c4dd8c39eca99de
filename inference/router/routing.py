"""Which registry version answers a request: routes read from a rendered KServe InferenceService.

An InferenceService carries the versions in annotations and the split in `canaryTrafficPercent`:

    metadata:
      name: conversion-xgboost
      annotations:
        serving.mlops-loop.io/model-version: "3"     # stable (or stable-version: "3", which wins)
        serving.mlops-loop.io/canary-version: "4"    # canary (optional)
    spec:
      predictor:
        canaryTrafficPercent: 20                     # share of requests for the canary

Knative semantics, which local mode copies: with a canary version and no `canaryTrafficPercent` the newest
revision (the canary) takes all traffic, i.e. it has been promoted; `0` rolls back. Triton serves a model by
its folder name, so each version lives in the router's repository as `<model>__v<version>/`
(`stage_model_version`). The `RouteTable` is swapped as a whole, so a request sees either the old or the
new routes, never a mix; `IsvcWatcher` reloads it when an InferenceService file changes.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

STABLE_ANNOTATION = "serving.mlops-loop.io/model-version"
# inference/deploy's render sets model-version to the storageUri's (newest) version and names the stable
# one here; when present it wins, so both renders route the same way.
STABLE_VERSION_ANNOTATION = "serving.mlops-loop.io/stable-version"
CANARY_ANNOTATION = "serving.mlops-loop.io/canary-version"
VERSION_SEPARATOR = "__v"
Role = Literal["stable", "canary"]
log = logging.getLogger(__name__)


class RouteError(ValueError):
    """An InferenceService that cannot be turned into a route (the message names file and field)."""


@dataclass(frozen=True)
class Target:
    """Where one request goes: the public model, its registry version and Triton's name for it."""

    model: str
    version: str
    role: Role

    @property
    def triton_name(self) -> str:
        return triton_model_name(self.model, self.version)


@dataclass(frozen=True)
class Route:
    model: str
    stable_version: str
    canary_version: str | None = None
    canary_percent: int = 0

    @property
    def targets(self) -> list[Target]:
        targets = [Target(self.model, self.stable_version, "stable")]
        if self.canary_version is not None:
            targets.append(Target(self.model, self.canary_version, "canary"))
        return targets

    def pick(self, draw: float) -> Target:
        """The target for a uniform `draw` in [0, 1): the canary when it falls in the canary's share."""
        if self.canary_version is not None and draw * 100 < self.canary_percent:
            return Target(self.model, self.canary_version, "canary")
        return Target(self.model, self.stable_version, "stable")

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
    stable_key = (
        STABLE_VERSION_ANNOTATION if annotations.get(STABLE_VERSION_ANNOTATION) else STABLE_ANNOTATION
    )
    stable = _version(annotations.get(stable_key), where, stable_key, required=True)
    canary = _version(annotations.get(CANARY_ANNOTATION), where, CANARY_ANNOTATION, required=False)
    predictor = _mapping(_mapping(isvc.get("spec"), where, "spec").get("predictor"), where, "spec.predictor")
    percent = predictor.get("canaryTrafficPercent")
    if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int)):
        raise RouteError(f"{where}: spec.predictor.canaryTrafficPercent must be an integer, got {percent!r}")
    if percent is not None and not 0 <= percent <= 100:
        raise RouteError(f"{where}: spec.predictor.canaryTrafficPercent must be in 0..100, got {percent}")
    if canary is None or canary == stable:
        return Route(name, stable)
    if percent is None:  # Knative: without the field the newest revision takes all traffic (promoted)
        return Route(name, canary)
    return Route(name, stable, canary, percent)


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
    raise RouteError(f"{path}: no InferenceService document")


class RouteTable:
    """Routes by public model name, replaced as a whole; `choose` draws stable/canary with a seeded RNG."""

    def __init__(self, routes: Iterable[Route] = (), seed: int | None = None) -> None:
        self._routes: dict[str, Route] = {}
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.generation = 0
        self.replace(routes)

    def replace(self, routes: Iterable[Route]) -> None:
        """Swap in new routes: one reference assignment, so readers see the old or the new table whole."""
        table = {route.model: route for route in routes}
        self._routes = table
        self.generation += 1

    def update(self, route: Route) -> None:
        self.replace([*(r for r in self._routes.values() if r.model != route.model), route])

    def get(self, model: str) -> Route | None:
        return self._routes.get(model)

    @property
    def routes(self) -> dict[str, Route]:
        return dict(self._routes)

    def choose(self, model: str) -> Target | None:
        route = self._routes.get(model)
        if route is None:
            return None
        with self._rng_lock:  # one seeded sequence for the whole process keeps a run reproducible
            draw = self._rng.random()
        return route.pick(draw)


class IsvcWatcher:
    """Polls InferenceService files and swaps the route table when one changes.

    A file that does not parse, or names a version that `is_servable` rejects (not loaded in Triton), leaves
    the current routes in place: a bad render must never turn serving requests into failing ones.
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        table: RouteTable,
        is_servable: Callable[[Target], bool] | None = None,
        interval_s: float = 0.5,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.table = table
        self.is_servable = is_servable
        self.interval_s = interval_s
        self.last_error: str | None = None
        self._digests: dict[Path, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> bool:
        """Reload changed files; True when the table was swapped.

        Each file is read once: the digest remembered is the digest of the very bytes that were parsed. (A
        second read could see a newer file, whose digest would then mark a never-loaded render as loaded;
        a rollback writes two renders back to back, and that left the canary routed.)"""
        snapshots = {path: _read(path) for path in self.paths}
        changed = {p: text for p, text in snapshots.items() if self._digests.get(p) != _digest(text)}
        if not changed:
            return False
        try:
            routes = [parse_isvc(_existing(text, path), path) for path, text in changed.items()]
            self._require_servable(routes)
        except RouteError as exc:
            if str(exc) != self.last_error:
                log.error("route table unchanged: %s", exc)
            self.last_error = str(exc)
            return False
        for path, text in changed.items():
            self._digests[path] = _digest(text)
        for route in routes:
            self.table.update(route)
        self.last_error = None
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> IsvcWatcher:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="isvc-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # a watcher that dies leaves the routes frozen: log and keep polling
                log.exception("isvc watcher: check failed; retrying")

    def _require_servable(self, routes: list[Route]) -> None:
        if self.is_servable is None:
            return
        for route in routes:
            for target in route.targets:
                if not self.is_servable(target):
                    raise RouteError(
                        f"{route.model}: version {target.version} ({target.role}) is not ready in Triton "
                        f"as {target.triton_name}"
                    )


def stage_model_version(
    source_model_dir: str | Path, repository: str | Path, model: str, version: str
) -> Path:
    """Copy an exported `local/<model>/` folder into `repository` as `<model>__v<version>/`, renamed in its
    config.pbtxt, so two versions of one model can be served side by side."""
    source, name = Path(source_model_dir), triton_model_name(model, version)
    config = source / "config.pbtxt"
    if not config.is_file():
        raise FileNotFoundError(f"{source}: no config.pbtxt (expected an exported local Triton model)")
    text = config.read_text()
    original = f'name: "{source.name}"'
    if original not in text:
        raise ValueError(f"{config}: expected the line {original!r}")
    dest = Path(repository) / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    (dest / "config.pbtxt").write_text(text.replace(original, f'name: "{name}"', 1))
    return dest


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


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _existing(text: str | None, path: Path) -> str:
    if text is None:
        raise RouteError(f"{path}: cannot read InferenceService (missing or unreadable)")
    return text


def _digest(text: str | None) -> str:
    return "missing" if text is None else hashlib.sha256(text.encode()).hexdigest()
