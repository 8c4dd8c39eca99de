"""Online detectors on tabular inputs: `cvm_online` (numeric, standardised with reference statistics) and
`fet_online` (binary 0/1 columns). They test after every row against thresholds simulated for the
spec's expected run time (requests between false alarms), and keep a small, checkpointable state.

Thresholds are simulated once, when the detector is fitted (in the pipeline's fit_detector step), and stored
in the bundle's manifest; loading rebuilds alibi's detector around them without simulating again. The
simulation needs about 2/beta bootstrap streams, beta = 1-(1-1/ERT)^(1/d), so its cost grows with the ERT and
the number of features (about a minute for ERT 10,000, 300 reference rows and 17 features here), which is why
it must not run where the drift service starts. The thresholds depend only on the reference size, window
sizes, ERT and feature count (the statistics are rank based), not on the data. Bundles fitted before the
thresholds were stored are loaded the old way, re-simulating.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitoring.detectors.alibi_online import alibi_state, restore_alibi_state, window_sizes
from monitoring.detectors.base import (
    DetectorError,
    DriftResult,
    finite_or_nan,
    is_numeric,
    read_table,
    save_detector_bundle,
    seeded,
)
from monitoring.detectors.tabular import TabularDetectorBase, TabularEncoding

if TYPE_CHECKING:
    from core.spec.model import ModelSpec

# Per-row history alibi appends forever; the detector only ever reads the newest window of it.
_GROWING_KEYS = ("xs", "test_stats", "drift_preds")
# What alibi's `_configure_thresholds` computes per kind, stored in the manifest under "calibration".
_CALIBRATION = {"cvm_online": ("thresholds",), "fet_online": ("thresholds", "permit_probs")}
# Bootstrap streams are simulated in batches of (reference + 2 windows)^2 booleans each: bound the memory.
_SIMULATION_BYTES = 256 * 2**20


def bootstraps_for(ert: int, n_features: int) -> int:
    """Enough simulated streams to estimate the (1-beta) quantile with a margin of 2."""
    beta = 1 - (1 - 1 / ert) ** (1 / max(n_features, 1))
    return max(1000, math.ceil(2 / beta))


class OnlineTabularDetector(TabularDetectorBase):
    online = True

    def __init__(
        self,
        manifest: dict[str, Any],
        alibi_detector: Any,
        reference: pd.DataFrame | None = None,
    ):
        super().__init__(manifest, alibi_detector, reference)
        self._max_ws = max(manifest["window_sizes"])

    @classmethod
    def fit(
        cls,
        kind: str,
        model: str,
        version: str,
        reference: pd.DataFrame,
        columns: list[str],
        ert: int,
        window: int,
    ) -> OnlineTabularDetector:
        chosen = _columns_for_kind(kind, reference, columns, model)
        encoding = TabularEncoding.fit(reference, chosen, standardize=kind == "cvm_online")
        sizes = window_sizes(window)
        manifest = {
            "kind": kind,
            "model": model,
            "version": version,
            "features": chosen,
            "ignored_features": [c for c in columns if c not in chosen],
            "encoding": encoding.to_dict(),
            "expected_run_time": ert,
            "window_sizes": sizes,
            "n_bootstraps": bootstraps_for(ert, len(chosen)),
            "reference_rows": len(reference),
            "seed": 0,
        }
        x_ref = _as_input(kind, encoding.transform(reference))
        with seeded(manifest["seed"]):
            alibi = _build_alibi(kind, x_ref, ert, sizes, manifest["n_bootstraps"])
        manifest["calibration"] = {key: _jsonable(getattr(alibi, key)) for key in _CALIBRATION[kind]}
        return cls(manifest, alibi, reference)

    @classmethod
    def from_bundle(cls, detector_dir: Path, manifest: dict[str, Any]) -> OnlineTabularDetector:
        """Rebuild alibi's detector from the stored reference sample and calibration (no simulation)."""
        calibration = manifest.get("calibration")
        if calibration is None:  # fitted before calibrations were stored: alibi re-simulates on load
            return super().from_bundle(detector_dir, manifest)
        kind = manifest["kind"]
        missing = [key for key in _CALIBRATION[kind] if key not in calibration]
        if missing:
            raise DetectorError(f"{detector_dir}: manifest calibration lacks {', '.join(missing)}")
        reference = read_table(Path(detector_dir) / manifest["reference_file"])
        x_ref = _as_input(kind, TabularEncoding.from_dict(manifest["encoding"]).transform(reference))
        stored = {key: np.asarray(calibration[key], dtype=np.float64) for key in _CALIBRATION[kind]}
        alibi = _build_alibi(
            kind,
            x_ref,
            manifest["expected_run_time"],
            manifest["window_sizes"],
            manifest["n_bootstraps"],
            stored,
        )
        return cls(manifest, alibi)

    @classmethod
    def fit_spec(
        cls, spec: ModelSpec, version: str, reference: pd.DataFrame, columns: list[str]
    ) -> OnlineTabularDetector:
        m = spec.monitoring
        return cls.fit(m.detector, spec.name, version, reference, columns, m.expected_run_time, m.window.size)

    def save(self, detector_dir: Path) -> Path:
        if self._reference is None:
            raise DetectorError(f"{self.model}: a loaded detector is saved already; copy its folder instead")
        # Fresh state in the bundle: alibi would otherwise save the stream seen so far.
        self._alibi.reset_state()
        return save_detector_bundle(detector_dir, self.manifest, self._alibi, self._reference[self.features])

    def score(self, rows: pd.DataFrame) -> DriftResult:
        if len(rows) == 0:
            raise DetectorError(f"{self.model} {self.version}: no rows to score")
        x = _as_input(self.kind, self.encoding.transform(rows))
        alarm = None
        for row in x:
            out = self._alibi.predict(row, return_test_stat=True)["data"]
            self._trim_history()
            if alarm is None and out["is_drift"]:
                alarm = out  # an alarm on any row of the batch counts, not only on its last row
        out = alarm if alarm is not None else out
        stats = np.nanmax(np.atleast_2d(out["test_stat"]), axis=0) if self._alibi.t >= self._max_ws else None
        return DriftResult(
            drift=bool(out["is_drift"]),
            statistics={
                f: finite_or_nan(stats[i]) if stats is not None else float("nan")
                for i, f in enumerate(self.features)
            },
            p_values={},
            threshold=_scalar(out["threshold"]),
            rows=len(rows),
        )

    @property
    def t(self) -> int:
        """Rows seen since the bundle was fitted or the state restored from."""
        return int(self._alibi.t)

    def state(self) -> dict:
        return alibi_state(self._alibi)

    def restore(self, state: dict) -> None:
        restore_alibi_state(self._alibi, state)

    def _trim_history(self) -> None:
        for key in _GROWING_KEYS:
            value = getattr(self._alibi, key, None)
            if value is not None and len(value) > self._max_ws:
                setattr(self._alibi, key, value[-self._max_ws :])


def _columns_for_kind(kind: str, frame: pd.DataFrame, columns: list[str], model: str) -> list[str]:
    if kind == "cvm_online":
        chosen = [c for c in columns if is_numeric(frame[c])]
    else:
        chosen = [c for c in columns if _is_binary(frame[c])]
    if not chosen:
        wanted = "numeric" if kind == "cvm_online" else "binary (0/1 or bool)"
        raise DetectorError(
            f"{model}: detector {kind!r} needs {wanted} columns; none among {', '.join(columns)}"
        )
    return chosen


def _is_binary(series: pd.Series) -> bool:
    values = set(pd.unique(series.dropna()))
    return pd.api.types.is_bool_dtype(series) or (is_numeric(series) and values <= {0, 1} and bool(values))


def _as_input(kind: str, x: np.ndarray) -> np.ndarray:
    # FET counts ones: anything not exactly 1 (an out-of-range or missing value) counts as 0.
    return (x == 1).astype(np.float32) if kind == "fet_online" else x


def _build_alibi(
    kind: str,
    x_ref: np.ndarray,
    ert: int,
    sizes: list[int],
    n_bootstraps: int,
    calibration: dict[str, np.ndarray] | None = None,
):
    """alibi's online detector; with a stored `calibration` its threshold simulation is replaced by it."""
    from alibi_detect.cd import CVMDriftOnline, FETDriftOnline

    base = CVMDriftOnline if kind == "cvm_online" else FETDriftOnline
    options: dict[str, Any] = {}
    if kind == "cvm_online":  # CVM simulates in batches; FET's streams are small
        options["batch_size"] = max(1, _SIMULATION_BYTES // (len(x_ref) + 2 * max(sizes)) ** 2)
    cls = base if calibration is None else _calibrated(base, calibration)
    return cls(x_ref, ert=ert, window_sizes=sizes, n_bootstraps=n_bootstraps, verbose=False, **options)


def _calibrated(base: type, calibration: dict[str, np.ndarray]) -> type:
    """`base` whose threshold configuration sets the stored arrays instead of simulating them: alibi calls
    `_configure_thresholds` from its constructor, and it is the only step that simulates."""

    class Calibrated(base):  # type: ignore[misc, valid-type]
        def _configure_thresholds(self) -> None:
            for key, value in calibration.items():
                setattr(self, key, value.copy())

    Calibrated.__name__ = base.__name__
    return Calibrated


def _jsonable(array: Any) -> list:
    return np.asarray(array, dtype=np.float64).tolist()


def _scalar(threshold: Any) -> float:
    values = np.asarray(threshold, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else float("nan")
