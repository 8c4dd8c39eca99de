"""Model-spec section for drift monitoring of the served model's inputs."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from core.spec.base import ColumnName, FieldProblem, PositiveInt, SpecModel, UniqueList

Detector = Literal["ks", "chi2", "tabular", "cvm_online", "fet_online", "mmd_online", "lsdd_online"]
BATCH_DETECTORS: frozenset[Detector] = frozenset({"ks", "chi2", "tabular"})
ONLINE_DETECTORS: frozenset[Detector] = frozenset({"cvm_online", "fet_online", "mmd_online", "lsdd_online"})


class MonitoringWindow(SpecModel):
    """The detector's buffer of recent requests: tested when `size` rows have arrived, and rows older
    than `max_age_s` are dropped (so a quiet model is not judged on stale traffic)."""

    size: PositiveInt
    max_age_s: PositiveInt


class Monitoring(SpecModel):
    """Input-drift detection (alibi-detect, behind the project's detector interface).

    The false-alarm budget depends on the detector kind: batch detectors (ks, chi2, tabular) test each
    full window and take `p_value` (and a multiple-testing `correction` across features); online
    detectors (`*_online`) test after every request and take `expected_run_time`, the average number of
    requests between false alarms when nothing drifts.
    """

    detector: Detector
    window: MonitoringWindow
    p_value: float | None = Field(default=None, gt=0, lt=0.5)
    """Batch detectors only: significance level per window."""
    expected_run_time: PositiveInt | None = None
    """Online detectors only: expected requests between false alarms."""
    correction: Literal["bonferroni", "fdr"] | None = None
    """Batch detectors only (default bonferroni); unset for online detectors."""
    alert_severity: Literal["critical", "warning", "info"]
    """Severity label of the model's drift alert (critical pages; warning and info open tickets): the drift
    service exports it as `mlops_model_alert_severity` and ModelInputDriftDetected takes it from there."""
    features: UniqueList[ColumnName] | None = None
    """Monitor only these input columns (default: all of them)."""

    @model_validator(mode="before")
    @classmethod
    def _default_correction(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("detector") in BATCH_DETECTORS and "correction" not in data:
            return {**data, "correction": "bonferroni"}
        return data

    @model_validator(mode="after")
    def _budget_matches_kind(self) -> Self:
        if self.is_online:
            if self.p_value is not None:
                raise FieldProblem(
                    "p_value",
                    f"online detector {self.detector!r} takes expected_run_time, not p_value "
                    f"(p_value is for batch detectors: {', '.join(sorted(BATCH_DETECTORS))})",
                )
            if self.expected_run_time is None:
                raise FieldProblem("expected_run_time", f"required for online detector {self.detector!r}")
            if self.correction is not None:
                raise FieldProblem(
                    "correction", f"only batch detectors take a correction, not {self.detector!r}"
                )
        else:
            if self.expected_run_time is not None:
                raise FieldProblem(
                    "expected_run_time",
                    f"batch detector {self.detector!r} takes p_value, not expected_run_time "
                    f"(expected_run_time is for online detectors: {', '.join(sorted(ONLINE_DETECTORS))})",
                )
            if self.p_value is None:
                raise FieldProblem("p_value", f"required for batch detector {self.detector!r}")
        if self.features is not None and not self.features:
            raise FieldProblem("features", "leave it out to monitor all features, or list at least one")
        return self

    @property
    def is_online(self) -> bool:
        return self.detector in ONLINE_DETECTORS
