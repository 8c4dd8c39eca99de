"""Batch detectors on raw tabular inputs: `tabular` (KS numeric + chi-square categorical), `ks`, `chi2`.

Categorical strings are ordinal-encoded with the reference's categories; unseen or missing values map to
one reserved code (so a new category shows up as drift instead of crashing). Numeric NaN becomes the
reference median. The encoding is stored in detector.json so scoring repeats it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from core.encoding import FeatureEncoder
from monitoring.detectors.base import (
    DetectorError,
    DriftResult,
    is_numeric,
    load_alibi,
    save_detector_bundle,
)

if TYPE_CHECKING:
    from core.spec.model import ModelSpec


@dataclass(frozen=True)
class TabularEncoding(FeatureEncoder):
    """The training side's `FeatureEncoder` (same fit: medians, optional standardisation, categories seen in
    the reference), but categories become ordinal codes, as alibi-detect's chi-square tests expect."""

    @property
    def columns(self) -> list[str]:
        return self.input_columns

    def reserved_code(self, column: str) -> int:
        """The code of unseen and missing values of a categorical column."""
        return len(self.categorical[column])

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DetectorError(f"rows to score: missing input columns {', '.join(missing)}")
        blocks = []
        if self.numeric:
            values = frame[self.numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
            values = values.fillna(self.medians).to_numpy()
            if self.means:
                means, scales = self.numeric_scaling()
                values = (values - means) / scales
            blocks.append(values)
        for column, categories in self.categorical.items():
            lookup = {category: code for code, category in enumerate(categories)}
            reserved = self.reserved_code(column)
            codes = [reserved if pd.isna(v) else lookup.get(str(v), reserved) for v in frame[column]]
            blocks.append(np.asarray(codes, dtype=np.float64)[:, None])
        return np.concatenate(blocks, axis=1).astype(np.float32)


class TabularDetectorBase:
    """What every tabular detector keeps: its manifest, the encoding it scores with, alibi's detector."""

    def __init__(
        self,
        manifest: dict[str, Any],
        alibi_detector: Any,
        reference: pd.DataFrame | None = None,
    ):
        self.manifest = manifest
        self.kind: str = manifest["kind"]
        self.model: str = manifest["model"]
        self.version: str = manifest["version"]
        self.encoding = TabularEncoding.from_dict(manifest["encoding"])
        self.features: list[str] = self.encoding.columns
        self._alibi = alibi_detector
        self._reference = reference

    @classmethod
    def from_bundle(cls, detector_dir: Path, manifest: dict[str, Any]) -> Self:
        return cls(manifest, load_alibi(detector_dir, manifest["seed"]))


class BatchTabularDetector(TabularDetectorBase):
    """Tests each full window against the reference, feature by feature, with a multiple-test correction."""

    online = False

    @classmethod
    def fit(
        cls,
        kind: str,
        model: str,
        version: str,
        reference: pd.DataFrame,
        columns: list[str],
        p_value: float,
        correction: str,
    ) -> BatchTabularDetector:
        encoding = TabularEncoding.fit(reference, _columns_for_kind(kind, reference, columns, model))
        manifest = {
            "kind": kind,
            "model": model,
            "version": version,
            "features": encoding.columns,
            "ignored_features": [c for c in columns if c not in encoding.columns],
            "encoding": encoding.to_dict(),
            "p_value": p_value,
            "correction": correction,
            "reference_rows": len(reference),
            "seed": 0,
        }
        x_ref = encoding.transform(reference)
        return cls(manifest, _build_alibi(kind, x_ref, encoding, p_value, correction), reference)

    @classmethod
    def fit_spec(
        cls, spec: ModelSpec, version: str, reference: pd.DataFrame, columns: list[str]
    ) -> BatchTabularDetector:
        m = spec.monitoring
        return cls.fit(m.detector, spec.name, version, reference, columns, m.p_value, m.correction)

    def save(self, detector_dir: Path) -> Path:
        if self._reference is None:
            raise DetectorError(f"{self.model}: a loaded detector is saved already; copy its folder instead")
        return save_detector_bundle(detector_dir, self.manifest, self._alibi, self._reference[self.features])

    def score(self, rows: pd.DataFrame) -> DriftResult:
        if len(rows) == 0:
            raise DetectorError(f"{self.model} {self.version}: no rows to score")
        out = self._alibi.predict(
            self.encoding.transform(rows), drift_type="batch", return_p_val=True, return_distance=True
        )["data"]
        return DriftResult(
            drift=bool(out["is_drift"]),
            statistics={f: float(v) for f, v in zip(self.features, out["distance"], strict=True)},
            p_values={f: float(v) for f, v in zip(self.features, out["p_val"], strict=True)},
            threshold=float(out["threshold"]),
            rows=len(rows),
        )

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        """Batch detectors keep no state between windows."""


def _columns_for_kind(kind: str, frame: pd.DataFrame, columns: list[str], model: str) -> list[str]:
    """KS only makes sense on numbers and chi-square on categories; `tabular` takes both."""
    if kind == "ks":
        chosen = [c for c in columns if is_numeric(frame[c])]
    elif kind == "chi2":
        chosen = [c for c in columns if not is_numeric(frame[c])]
    else:
        chosen = list(columns)
    if not chosen:
        raise DetectorError(f"{model}: detector {kind!r} has no suitable columns among {', '.join(columns)}")
    return chosen


def _build_alibi(kind: str, x_ref: np.ndarray, encoding: TabularEncoding, p_value: float, correction: str):
    from alibi_detect.cd import ChiSquareDrift, KSDrift, TabularDrift

    if kind == "ks":
        return KSDrift(x_ref, p_val=p_value, correction=correction, input_shape=(x_ref.shape[1],))
    if kind == "chi2":
        return ChiSquareDrift(x_ref, p_val=p_value, correction=correction, input_shape=(x_ref.shape[1],))
    first = len(encoding.numeric)
    # None: alibi takes each column's categories from the reference; an unseen code joins at test time.
    categories = {first + i: None for i in range(len(encoding.categorical))}
    return TabularDrift(
        x_ref,
        p_val=p_value,
        correction=correction,
        categories_per_feature=categories,
        input_shape=(x_ref.shape[1],),
    )
