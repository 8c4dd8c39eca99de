"""Model quality from delayed outcomes: log each served prediction, join outcomes to it by request id, and
keep rolling accuracy / ROC AUC / log loss per (model, version) exported with the spec's floors.

The drift service calls `observe_request` / `observe_response` with every routed KServe logger event,
decoded once (`monitoring.payloads.logged.LoggedInference`), and `ingest_outcomes` for
`POST /v1/outcomes`. How ids and labels map onto rows: `outcomes.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitoring.payloads.logged import Key, LoggedInference
from monitoring.quality.metrics import QualityMetrics, usable_rows, window_metrics
from monitoring.quality.outcomes import Outcome, class_index, parse_outcomes
from monitoring.quality.ranking import ranking_window_metrics
from monitoring.quality.store import PredictionStore, StoredRow

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SIZE = 1000
DEFAULT_WINDOW_MAX_AGE_S = 7 * 86_400.0
UNMATCHED_PRIORITY = ("bad_label", "no_prediction", "ambiguous", "duplicate")


@dataclass(frozen=True)
class ModelLabels:
    """What the tracker needs from a model spec: class names (multiclass) and the evaluation floors."""

    classes: tuple[str, ...] | None = None
    floors: Mapping[str, float] = field(default_factory=dict)
    ranking_k: tuple[int, ...] = ()
    """A ranker's cut-offs (`label.k`): its outcomes are relevance per shown row (ranking.py)."""


@dataclass(frozen=True)
class OutcomeReport:
    outcomes: int
    joined: int  # outcomes that labeled at least one logged prediction row
    rows_labeled: int
    unmatched: dict[str, int]


def labels_from_specs(models: Iterable[str], spec_dir: str | Path | None = None) -> dict[str, ModelLabels]:
    """Classes and floors per model from `pipelines/models` (or `spec_dir`); a model without a spec gets
    none (binary 0/1 labels, no floors) and a warning, so quality is still measured."""
    from core.errors import SpecError
    from core.spec.model import load_specs

    found: dict[str, ModelLabels] = {}
    for model in sorted(set(models)):
        try:
            (spec,) = load_specs(spec_dir, names=[model])
        except SpecError as exc:
            log.warning("quality: %s; %s is scored without floors or class names", exc, model)
            continue
        found[model] = ModelLabels(
            spec.label.classes and tuple(spec.label.classes),
            dict(spec.evaluation.floors),
            tuple(spec.label.k),
        )
    return found


class QualityTracker:
    def __init__(
        self,
        store: PredictionStore,
        metrics: QualityMetrics,
        models: Mapping[str, ModelLabels],
        window_size: int = DEFAULT_WINDOW_SIZE,
        window_max_age_s: float = DEFAULT_WINDOW_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_size < 1 or window_max_age_s <= 0:
            raise ValueError(
                f"quality window: need size >= 1 and max age > 0, got {window_size}, {window_max_age_s}"
            )
        self.store = store
        self.metrics = metrics
        self.models = dict(models)
        self.window_size = window_size
        self.window_max_age_s = window_max_age_s
        self.clock = clock
        self._lock = threading.Lock()  # one outcome batch at a time: a second label of a row is a duplicate
        self._known: set[Key] = set()

    @property
    def rankers(self) -> frozenset[str]:
        """The models whose specs are rankers: their responses are scores and outcomes relevance."""
        return frozenset(model for model, labels in self.models.items() if labels.ranking_k)

    def start(self, versions: Iterable[Key]) -> None:
        """Export floors, restore the labeled counts, and score the windows the store already holds."""
        for model, labels in self.models.items():
            self.metrics.set_floors(model, labels.floors)
        counts = self.store.labeled_counts()
        for key in sorted({*versions, *counts}):
            self._register(key, counts.get(key, 0))
            self.refresh(*key)

    def _register(self, key: Key, labeled: int = 0) -> None:
        if key not in self._known:
            self._known.add(key)
            self.metrics.register_version(*key, labeled=labeled)

    # --------------------------------------------------------------------------------- predictions
    def observe_request(self, logged: LoggedInference) -> None:
        """Log a request's rows (`rows` None: inputs not decodable without a detector, logged empty)."""
        self._register(logged.key)
        rows = logged.rows
        records = rows.records() if rows is not None else [None] * logged.row_count
        self.store.log_request(
            logged.event_id, logged.request_id, logged.model, logged.version, records, self.clock()
        )

    def observe_response(self, logged: LoggedInference) -> None:
        self._register(logged.key)
        model, version = logged.key
        if logged.scores is None:  # the drift side still counts the event; quality loses this prediction
            log.warning(
                "quality: response %s of %s %s not logged: %s",
                logged.event_id,
                model,
                version,
                logged.scores_problem,
            )
            self.metrics.count_unlogged(model, version, "bad_response")
            return
        proba = logged.scores.tolist()
        self.store.log_response(logged.event_id, logged.request_id, model, version, proba, self.clock())

    # ------------------------------------------------------------------------------------ outcomes
    def ingest_outcomes(self, body: bytes) -> OutcomeReport:
        outcomes = parse_outcomes(body)  # OutcomeError (400) before anything is applied
        now = self.clock()
        unmatched: Tally[str] = Tally()
        touched: Tally[Key] = Tally()
        by_class: Tally[tuple[str, str, str]] = Tally()
        with self._lock:
            for outcome in outcomes:
                labeled, reason = self._join(outcome, now)
                touched.update(key for key, _ in labeled)
                by_class.update((*key, name) for key, name in labeled)
                if not labeled:
                    unmatched[reason] += 1
                    self.metrics.unmatched.labels(reason=reason).inc()
            for key, rows in touched.items():
                self._register(key)
                self.metrics.count_labeled(*key, rows)
                self.refresh(*key)
            for (model, version, name), rows in by_class.items():
                self.metrics.count_outcome(model, version, name, rows)
        joined = len(outcomes) - sum(unmatched.values())
        return OutcomeReport(len(outcomes), joined, sum(touched.values()), dict(unmatched))

    def _join(self, outcome: Outcome, at: float) -> tuple[list[tuple[Key, str]], str]:
        """Label the rows the outcome names; returns each one's key and class name, or none and why."""
        found = self.store.matching(outcome.request_id)
        if not found:
            return [], "unknown_request"
        candidates, problems = _candidates(found, outcome.row), Tally[str]()
        if outcome.row is None and not candidates:
            problems["ambiguous"] += 1
        updates, keys = [], []
        for row in candidates:
            problem = self._problem(row, outcome.label)
            if problem:
                problems[problem] += 1
                continue
            labels = self.models.get(row.model, ModelLabels())
            index = _label_index(outcome.label, labels, len(row.proba or ()))
            updates.append((row.ce_id, row.row, index, at, outcome.observed_at))
            keys.append(((row.model, row.version), labels.classes[index] if labels.classes else str(index)))
        if updates:
            self.store.set_labels(updates)
            return keys, ""
        return [], next((r for r in UNMATCHED_PRIORITY if problems[r]), "unknown_request")

    def _problem(self, row: StoredRow, label: int | str) -> str | None:
        if row.label is not None:
            return "duplicate"
        if row.proba is None:
            return "no_prediction"
        if _label_index(label, self.models.get(row.model, ModelLabels()), len(row.proba)) is None:
            return "bad_label"
        return None

    def refresh(self, model: str, version: str) -> dict[str, float]:
        """Score the rolling window of (model, version) and export it."""
        since = self.clock() - self.window_max_age_s
        labels, proba, requests = self.store.labeled_window(model, version, self.window_size, since)
        ranking_k = self.models.get(model, ModelLabels()).ranking_k
        if ranking_k:
            scores = ranking_window_metrics(requests, labels, [p[0] for p in proba], ranking_k)
            self.metrics.set_window(model, version, len(labels), scores)
            return scores
        labels, proba = usable_rows(labels, proba)
        scores = window_metrics(labels, proba)
        self.metrics.set_window(model, version, len(labels), scores)
        return scores


def _label_index(label: int | str, labels: ModelLabels, outputs: int) -> int | None:
    """The stored label: a classifier's class index, or a ranker's relevance (a whole number >= 0)."""
    if labels.ranking_k:
        if isinstance(label, str):
            return int(label) if label.isdigit() else None
        return label
    return class_index(label, labels.classes, outputs)


def _candidates(found: list[StoredRow], row: int | None) -> list[StoredRow]:
    """The rows an outcome labels: `row` of each matching request, or with a bare id the only row of
    each single-row request (a bare id for a batched request is ambiguous and labels nothing)."""
    if row is not None:
        return [r for r in found if r.row == row]
    sizes = Tally(r.ce_id for r in found)
    return [r for r in found if (r.rows_in_request or sizes[r.ce_id]) == 1]
