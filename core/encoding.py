"""Tabular feature encoding: a model version's own fitted preprocessing.

The encoder turns raw feature rows into the float32 matrix every tabular estimator takes: numeric columns
with missing values filled by the training median, optionally standardised; categorical columns one-hot
encoded over the categories seen in training (unseen and missing -> all zeros). It is plain data
(`to_dict`/`from_dict`, `encoder.json` in the bundle) and travels inside the served model: the exported
graph applies the same fit to raw named features (core/encoding_onnx.py), so nothing in front of the model
holds any version's state.

`scale_in_model` (every bundle since model-side scaling): `transform` leaves numeric columns unscaled and
`scale` standardises them, the arithmetic the exported graph repeats. Older bundles standardise in
`transform`; they still predict in process, but cannot be exported as self-contained (re-train them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.raw_features import MISSING_CATEGORY, is_numeric_column, raw_inputs

ENCODER_FILE = "encoder.json"
"""The encoder's file in a tabular bundle (and in the transformer's download): `save`/`load` below."""


@dataclass(frozen=True)
class FeatureEncoder:
    numeric: list[str]
    categorical: dict[str, list[str]]
    medians: dict[str, float]
    means: dict[str, float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    scale_in_model: bool = False
    """True: `transform` leaves numeric columns unscaled and the model applies `scale`; False: `transform`
    standardises (bundles saved before the model-side scaling)."""

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, columns: list[str], standardize: bool = False, scale_in_model: bool = False
    ) -> FeatureEncoder:
        numeric = [c for c in columns if is_numeric_column(frame[c])]
        # The empty string is how a missing category travels to the served model, so it is never one.
        categorical = {
            c: sorted({str(v) for v in frame[c].dropna().unique()} - {MISSING_CATEGORY})
            for c in columns
            if c not in numeric
        }
        medians = {c: _finite(frame[c].median()) for c in numeric}
        means, scales = {}, {}
        if standardize:
            filled = frame[numeric].astype("float64").fillna(medians)
            means = {c: float(filled[c].mean()) for c in numeric}
            scales = {c: float(filled[c].std(ddof=0)) or 1.0 for c in numeric}
        return cls(
            numeric=numeric,
            categorical=categorical,
            medians=medians,
            means=means,
            scales=scales,
            scale_in_model=standardize and scale_in_model,
        )

    @property
    def output_names(self) -> list[str]:
        names = list(self.numeric)
        for column, categories in self.categorical.items():
            names.extend(f"{column}={category}" for category in categories)
        return names

    @property
    def input_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def raw_inputs(self) -> list[dict]:
        """The served model's inputs: one named tensor per raw feature (core/raw_features.py)."""
        return raw_inputs(self.numeric, list(self.categorical))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"missing input columns: {', '.join(missing)}")
        numeric = frame[self.numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
        numeric = numeric.fillna(self.medians)
        values = numeric.to_numpy(dtype=np.float64)
        if self.means and not self.scale_in_model:
            means, scales = self.numeric_scaling()
            values = (values - means) / scales
        blocks = [values]
        for column, categories in self.categorical.items():
            if not categories:
                continue
            values = (
                frame[column]
                .astype("object")
                .where(frame[column].notna(), None)
                .map(lambda v: None if v is None else str(v))
            )
            blocks.append(np.stack([(values == c).to_numpy() for c in categories], axis=1).astype(np.float64))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    @property
    def scales_in_model(self) -> bool:
        """The model standardises its input (`scale`); the wire tensor is unscaled."""
        return bool(self.means) and self.scale_in_model

    def numeric_scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """Means and scales of the numeric columns, in `numeric` order (pandas would align by name and
        could reorder the columns)."""
        return (
            np.array([self.means[c] for c in self.numeric], dtype=np.float64),
            np.array([self.scales[c] for c in self.numeric], dtype=np.float64),
        )

    def scale(self, matrix: np.ndarray) -> np.ndarray:
        """Model-side standardisation of a `transform` output; the identity unless `scales_in_model`."""
        if not self.scales_in_model:
            return matrix
        offsets, factors = self.scaling_vectors()
        # float32 subtract, then multiply by the reciprocal: the arithmetic of ONNX's Scaler and of the
        # exported torch head, so a tree split sees the same value in process and in Triton
        inverse = (1.0 / factors).astype(np.float32)
        return (np.asarray(matrix, dtype=np.float32) - offsets.astype(np.float32)) * inverse

    def scaling_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output column, the mean to subtract and the scale to divide by (0 and 1 off the numeric
        columns): what `scale` applies and the exported graphs hold."""
        width, count = len(self.output_names), len(self.numeric)
        offsets, factors = np.zeros(width), np.ones(width)
        offsets[:count], factors[:count] = self.numeric_scaling()
        return offsets, factors

    def to_dict(self) -> dict:
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "medians": self.medians,
            "means": self.means,
            "scales": self.scales,
            "scale_in_model": self.scale_in_model,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureEncoder:
        return cls(**data)

    def save(self, folder: Path) -> str:
        """Write `encoder.json` into `folder`; returns the file name (a bundle lists it as a native file)."""
        folder.mkdir(parents=True, exist_ok=True)
        # No sort_keys: `transform` subtracts `means` as a pandas Series, and a key order other than
        # `numeric`'s reorders the output columns (seen: test ROC AUC 0.82 -> 0.63).
        (folder / ENCODER_FILE).write_text(json.dumps(self.to_dict(), indent=2))
        return ENCODER_FILE

    @classmethod
    def load(cls, folder: str | Path) -> FeatureEncoder:
        path = Path(folder) / ENCODER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no {ENCODER_FILE} (only tabular bundles have an encoder)")
        return cls.from_dict(json.loads(path.read_text()))


def _finite(value: float) -> float:
    return float(value) if pd.notna(value) else 0.0
