"""Evaluate a ranker on its held-out test queries: ranking metrics, the popularity baseline, position-bias-
aware metrics, slices, a plot and a data-drift report.

    evaluation = evaluate_ranking(predictor, test_rows, reference_rows, spec, out_dir)
    evaluation.metrics["ndcg_at_10"], evaluation.metrics["popularity_ndcg_at_10"]

- **Metrics** (core/ranking_metrics.py) at the spec's cut-offs `label.k`, per query (`label.group_column`),
  averaged over the queries holding a relevant row.
- **Popularity baseline** (`popularity_<metric>`): the same test queries ranked by each item's share of
  relevant rows in the reference (the rows before the test split); an item the reference never showed
  ranks last. The gate's `evaluation.baseline_margin` reads these.
- **Position-bias-aware** (`ips_<metric>`, with `label.position_column`): each test row's relevance divided
  by the propensity of the position it was logged at, estimated from the reference's randomised slates
  (`position_propensities`); left out, with the reason in `ips_note`, when a test position has none.
- **Slices** (`evaluation.slices`): a slice is the rows with one value of the column; queries keep only
  those rows (a customer attribute keeps whole queries, an item attribute ranks that kind of item).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from components.evaluate.report import cap_rows
from components.evaluate.step import METRICS_FILE, PLOTS_DIR, REPORT_FILE, Evaluation
from core.bundle import Predictor
from core.frameworks.base import label_codes, query_ids, ranker_metrics
from core.metrics import MIN_SLICE_ROWS, MISSING_SLICE_VALUE
from core.ranking_metrics import position_propensities, ranking_metrics
from core.spec.model import ModelSpec

BASELINE_PREFIX = "popularity_"
IPS_PREFIX = "ips_"
PLOT_CUTOFFS = 10
"""The NDCG-by-cut-off plot reaches at least this far (further when the spec evaluates a larger k)."""


def evaluate_ranking(
    predictor: Predictor,
    test_frame: pd.DataFrame,
    reference: pd.DataFrame | None,
    spec: ModelSpec,
    out_dir: str | Path,
    *,
    with_report: bool = True,
) -> Evaluation:
    """Measure the ranker on `test_frame` against the popularity of items in `reference` (see the module
    docstring); write metrics.json, plots/ndcg_by_k.png and the data-drift report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = reference if reference is not None else test_frame.iloc[:0]
    scores = np.asarray(predictor.predict_proba(test_frame), dtype=np.float64)[:, 0]
    popular = popularity_scores(spec, reference, test_frame)
    metrics: dict[str, Any] = ranker_metrics(spec, test_frame, scores)
    metrics |= _prefixed(BASELINE_PREFIX, ranker_metrics(spec, test_frame, popular))
    metrics |= _position_aware(spec, reference, test_frame, scores, popular)
    evaluation = Evaluation(
        model=spec.name,
        classes=list(predictor.info.classes),
        primary_metric=spec.evaluation.primary_metric,
        metrics=metrics,
        slices=_slices(spec, test_frame, scores, popular),
        confusion_matrix={"categories": [], "matrix": []},
        roc={"fpr": [], "tpr": [], "thresholds": []},
        behaviour=[],
        plots={"ndcg_by_k": _plot_ndcg_by_k(spec, test_frame, scores, popular, out_dir / PLOTS_DIR)},
        report_path=(
            _write_drift_report(predictor.info.inputs, reference, test_frame, out_dir / REPORT_FILE)
            if with_report and not reference.empty
            else None
        ),
        metrics_path=out_dir / METRICS_FILE,
    )
    evaluation.metrics_path.write_text(json.dumps(evaluation.to_json(), indent=2, allow_nan=False))
    return evaluation


def popularity_scores(spec: ModelSpec, reference: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Each row's item scored by its share of relevant rows in `reference` (0 for an unseen item)."""
    item = spec.label.item_column
    relevant = pd.Series(label_codes(spec, reference) > 0, index=reference.index)
    rate = relevant.groupby(reference[item]).mean() if len(reference) else pd.Series(dtype=float)
    return frame[item].map(rate).fillna(0.0).to_numpy(dtype=np.float64)


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in metrics.items() if name not in ("rows", "queries")}


def _position_aware(
    spec: ModelSpec, reference: pd.DataFrame, test: pd.DataFrame, scores: np.ndarray, popular: np.ndarray
) -> dict[str, Any]:
    column = spec.label.position_column
    if column is None:
        return {}
    relevant = label_codes(spec, reference) > 0
    if not relevant.any():
        return {"ips_note": "no relevant row in the reference to estimate position propensities from"}
    propensity = position_propensities(reference[spec.label.item_column], reference[column], relevant)
    weights = test[column].map(propensity)
    if weights.isna().any():
        missing = sorted(test.loc[weights.isna(), column].unique().tolist())
        return {"ips_note": f"no propensity for logged position(s) {missing[:5]}: metrics left out"}
    gains = label_codes(spec, test) / weights.to_numpy(dtype=np.float64)
    queries = query_ids(spec, test)
    out: dict[str, Any] = {}
    for prefix, ranked in ((IPS_PREFIX, scores), (IPS_PREFIX + BASELINE_PREFIX, popular)):
        out |= _prefixed(prefix, ranking_metrics(queries, gains, ranked, ks=spec.label.k))
    out["ips_propensities"] = {str(k): v for k, v in sorted(propensity.items())}
    return out


def _slices(
    spec: ModelSpec, test: pd.DataFrame, scores: np.ndarray, popular: np.ndarray
) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in spec.evaluation.slices:
        if column not in test.columns:
            raise ValueError(f"{spec.name}: slice column {column!r} is not in the test rows")
        values = test[column].astype("string").fillna(MISSING_SLICE_VALUE)
        out[column] = {}
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            rows = test[mask]
            if len(rows) < MIN_SLICE_ROWS:
                out[column][value] = {"rows": len(rows)}
                continue
            model = ranker_metrics(spec, rows, scores[mask])
            out[column][value] = model | _prefixed(BASELINE_PREFIX, ranker_metrics(spec, rows, popular[mask]))
    return out


def _plot_ndcg_by_k(
    spec: ModelSpec, test: pd.DataFrame, scores: np.ndarray, popular: np.ndarray, folder: Path
) -> Path:
    cutoffs = list(range(1, max(PLOT_CUTOFFS, *spec.label.k) + 1))
    queries, gains = query_ids(spec, test), label_codes(spec, test)
    figure = Figure(figsize=(5.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set(title=f"{spec.name}: NDCG@k on the test queries", xlabel="k", ylabel="NDCG@k")
    for label, ranked in (("model", scores), ("popularity baseline", popular)):
        metrics = ranking_metrics(queries, gains, ranked, ks=cutoffs)
        axes.plot(cutoffs, [metrics[f"ndcg_at_{k}"] for k in cutoffs], marker="o", label=label)
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ndcg_by_k.png"
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _write_drift_report(inputs: list[str], reference: pd.DataFrame, test: pd.DataFrame, path: Path) -> Path:
    """Evidently's data-drift preset on the model's inputs, reference rows vs test rows (a ranker has no
    classification section: its quality is the metrics above)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    current, before = cap_rows(test)[inputs], cap_rows(reference)[inputs]
    numeric = [c for c in inputs if pd.api.types.is_numeric_dtype(current[c])]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[c for c in inputs if c not in numeric]
    )
    snapshot = Report([DataDriftPreset(columns=inputs)]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(before, data_definition=definition),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
