"""Which registry version answers a request: routes read from a rendered KServe InferenceService.

An InferenceService carries the versions in annotations and the split in `canaryTrafficPercent`:

    metadata:
      name: conversion-xgboost
      annotations:
        serving.mlops-loop.io/model-version: "3"     # stable (or stable-version: "3", which wins)
        serving.mlops-loop.io/canary-version: "4"    # canary (optional)
        serving.mlops-loop.io/shadow-version: "5"    # shadow (optional): gets a copy, never answers
    spec:
      predictor:
        canaryTrafficPercent: 20                     # share of requests for the canary

Knative semantics, which local mode copies: with a canary version and no `canaryTrafficPercent` the newest
revision (the canary) takes all traffic, i.e. it has been promoted; `0` rolls back. In KServe's Standard mode
the split is `spec.canary[0].trafficPercent` and each predictor names its version in its own `annotations`
(inference/deploy/standard.py); `isvc.py` reads both. Triton serves a model by
its folder name, so each version lives in the router's repository as `<model>__v<version>/`
(`stage_model_version`). The `RouteTable` is swapped as a whole, so a request sees either the old or the
new routes, never a mix; `IsvcWatcher` reloads it when an InferenceService file changes.

A shadow version is not part of the split: after each live answer the router hands the request to
`shadow.ShadowMirror`, which sends a copy to the shadow's Triton model and compares the answers; a shadow
Triton does not serve does not hold a render back (its copies count as errors, live traffic is untouched).

The annotations, `Route`/`Target` and the InferenceService parsers live in `isvc.py`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from inference.router.isvc import (
    OtherKinds,
    Route,
    RouteError,
    Target,
    parse_isvc,
    triton_model_name,
)

log = logging.getLogger(__name__)


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

    skip_other_kinds = False
    """True where a folder holds other objects too and each check reads one file (local_runtime's folder
    watcher): a file of other kinds only is remembered and left alone, not an error at every check."""

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
            if isinstance(exc, OtherKinds) and self.skip_other_kinds:
                # a folder's other objects (a shadow's HTTPRoute, Triggers): read, remembered, not routed
                self._digests.update({p: _digest(text) for p, text in changed.items()})
                return False
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
