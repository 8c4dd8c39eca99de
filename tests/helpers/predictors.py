"""Small real predictors behind the bundle's Predictor protocol (scikit-learn logistic regressions) and
the time split the evaluate and gate tests train them on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.spec.model import ModelSpec

# Includes the columns conversion-sklearn's behavioural checks perturb (evaluate runs them).
CONVERSION_INPUTS = [
    "plan_tier",
    "company_size",
    "sessions_7d",
    "pricing_page_views_7d",
    "message_count",
    "pricing_messages",
    "support_tickets_30d",
]


def bundle_info(spec: ModelSpec, classes: list[str], inputs: list[str]) -> BundleInfo:
    return BundleInfo(
        model_name=spec.name,
        framework="sklearn",
        task=spec.label.task,
        label=spec.label.column,
        classes=classes,
        inputs=inputs,
        native_files=[],
        triton_inputs=[],
        triton_outputs=[],
    )


class TabularPredictor:
    """FeatureEncoder + logistic regression: the shape of a real tabular bundle's predictor."""

    def __init__(self, spec: ModelSpec, train: pd.DataFrame, inputs: list[str], shuffle_seed: int | None):
        self.info = bundle_info(spec, ["0", "1"], inputs)
        self.encoder = FeatureEncoder.fit(train, inputs, standardize=True)
        labels = train[spec.label.column].to_numpy()
        if shuffle_seed is not None:  # a model that learned nothing, to lose against the champion
            labels = np.random.default_rng(shuffle_seed).permutation(labels)
        self.model = LogisticRegression(max_iter=500).fit(self.encoder.transform(train), labels)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self.encoder.transform(frame))

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"input__0": self.encoder.transform(frame)}


class TextPredictor:
    """TF-IDF + logistic regression over the raw text, classes in the spec's output order."""

    def __init__(self, spec: ModelSpec, train: pd.DataFrame):
        self.info = bundle_info(spec, list(spec.label.classes or ()), ["text"])
        self.vectorizer = TfidfVectorizer(min_df=2).fit(train["text"])
        self.model = LogisticRegression(max_iter=300).fit(
            self.vectorizer.transform(train["text"]), train[spec.label.column]
        )
        self.order = [list(self.model.classes_).index(c) for c in self.info.classes]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self.vectorizer.transform(frame["text"]))[:, self.order]

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError("not exported in these tests")


def time_split(frame: pd.DataFrame, test_fraction: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest rows train, newest test (the training contract's split, without validation)."""
    cut = int(len(frame) * (1 - test_fraction))
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)
