"""XGBoost trainer: gradient-boosted trees on the encoder's float32 matrix, served by Triton's FIL backend.

The bundle holds `encoder.json` and `model.json` (XGBoost's own JSON). The served model is a Triton
ensemble (inference/triton_repository.py): the encoder's preprocessing graph, then `xgboost.json`, the same
trees in the JSON dialect the cluster's FIL backend parses (`model_type: xgboost_json`; see
`fil_compatible_json`). Early stopping watches the validation split's log loss; the saved model is cut to
the best iteration, because FIL (and `Booster.inplace_predict`) use every round in the file.
`predict_proba` runs the saved booster's `inplace_predict` on the encoded rows, i.e. exactly what the
ensemble's FIL step computes from the same matrix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.frameworks.base import (
    TabularPredictor,
    describe_bundle,
    input_columns,
    label_codes,
    query_ids,
    training_threads,
    validation_score,
)
from core.spec.model import ModelSpec

NAME = "xgboost"
BACKENDS = frozenset({"fil", "python"})
PIP_MODULES = ("xgboost",)
GPU = False
EPOCHS = False

MODEL_FILE = "model.json"
TRITON_FILE = "xgboost.json"  # the FIL backend's default file name for model_type xgboost_json


class XGBoostPredictor(TabularPredictor):
    def __init__(self, info: BundleInfo, encoder: FeatureEncoder, booster: Any) -> None:
        super().__init__(info, encoder)
        self.booster = booster

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.booster.inplace_predict(matrix))
        if self.info.task == "ranking":  # one score per row: the predictor's one output column
            return raw.reshape(-1, 1)
        if raw.ndim == 1:  # binary:logistic gives P(class 1) only
            return np.stack([1.0 - raw, raw], axis=1)
        return raw


def check_spec(spec: ModelSpec) -> None:
    """No rules beyond the spec's own: any tabular feature service or request fields."""


def fit(
    spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
) -> tuple[XGBoostPredictor, float]:
    """Fit on `train` with early stopping on `valid`; write the bundle files into `out_dir`."""
    inputs = input_columns(spec, train)
    encoder = FeatureEncoder.fit(train, inputs)  # trees need no standardisation
    model = _estimator(spec, params)
    if spec.label.task == "ranking":
        train, valid = _by_query(spec, train), _by_query(spec, valid)
        queries = {"qid": query_ids(spec, train), "eval_qid": [query_ids(spec, valid)]}
    else:
        queries = {}
    model.fit(
        encoder.transform(train),
        label_codes(spec, train),
        eval_set=[(encoder.transform(valid), label_codes(spec, valid))],
        verbose=False,
        **queries,
    )
    rounds = _rounds_to_keep(model)
    booster = model.get_booster()[:rounds]
    out_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(out_dir / MODEL_FILE)
    record = {"boosting_rounds": rounds, "max_rounds": int(model.get_booster().num_boosted_rounds())}
    info = describe_bundle(
        spec, inputs, [encoder.save(out_dir), MODEL_FILE], encoder.raw_inputs, params, record
    )
    info.save(out_dir)
    predictor = load(out_dir, info)  # predict from the saved file: what serving will load
    return predictor, validation_score(spec, valid, predictor.predict_proba(valid))


def load(folder: Path, info: BundleInfo) -> XGBoostPredictor:
    import xgboost

    path = Path(folder) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder}: xgboost bundle has no {MODEL_FILE}")
    booster = xgboost.Booster(model_file=str(path))
    booster.set_param({"nthread": training_threads()})
    return XGBoostPredictor(info, FeatureEncoder.load(folder), booster)


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    """Write the model as `xgboost.json` (FIL's dialect) into `dest_dir`, a Triton model version folder;
    returns the file name. The local Python backend loads the same file with XGBoost."""
    source = Path(folder) / MODEL_FILE
    if not source.exists():
        raise FileNotFoundError(f"{folder}: xgboost bundle has no {MODEL_FILE}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / TRITON_FILE).write_text(fil_compatible_json(source.read_text(), where=str(source)))
    return TRITON_FILE


def fil_compatible_json(model_json: str, where: str = "model.json") -> str:
    """XGBoost 3.x's model JSON in the form the FIL backend of the pinned Triton parses.

    Triton 25.10's FIL backend links Treelite 4.4.1 (triton-inference-server/fil_backend, branch r25.10,
    commit 3876644f, cmake/thirdparty/get_treelite.cmake), whose XGBoost JSON reader stops at two things
    XGBoost 3.x writes (fil_backend issues #378, #403): the categorical-encoding block `cats`, and
    `base_score` as a vector (`"[5.16E-1]"`). Our models take the encoder's numeric matrix, so `cats` is
    always empty; a base score that is one value (binary, or a shared multiclass intercept) is the scalar
    the old format holds.
    The trees are untouched, so predictions are identical (tests/core/test_fil_export.py loads the file with
    that Treelite).
    """
    document = json.loads(model_json)
    learner = document["learner"]
    cats = learner["gradient_booster"]["model"].pop("cats", None)
    if cats and any(cats.get(key) for key in ("enc", "feature_segments", "sorted_idx")):
        raise ValueError(f"{where}: categorical splits cannot be served by FIL's XGBoost reader")
    parameters = learner["learner_model_param"]
    values = str(parameters["base_score"]).strip("[]").split(",")
    if len({float(value) for value in values}) != 1:
        raise ValueError(
            f"{where}: per-class base scores {parameters['base_score']} cannot be served by FIL's XGBoost "
            "reader; train with one base_score (the trainer's default for multiclass)"
        )
    parameters["base_score"] = values[0]
    return json.dumps(document)


def _by_query(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by query, queries in order of first appearance: XGBoost's ranker wants each query's
    rows together and the query ids ascending."""
    return frame.iloc[np.argsort(query_ids(spec, frame), kind="stable")].reset_index(drop=True)


def _estimator(spec: ModelSpec, params: dict[str, Any]) -> Any:
    import xgboost

    ranking = spec.label.task == "ranking"
    estimator = xgboost.XGBRanker if ranking else xgboost.XGBClassifier
    allowed = set(estimator().get_params())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"{spec.name}: {estimator.__name__} takes no hyperparameter(s) {', '.join(unknown)} "
            "(training.hyperparameters / training.search.space)"
        )
    if ranking:
        defaults = {
            # LambdaMART on NDCG; early stopping watches NDCG at the largest cut-off the spec evaluates.
            "objective": "rank:ndcg",
            "eval_metric": f"ndcg@{max(spec.label.k)}",
            "early_stopping_rounds": spec.training.early_stopping_rounds,
            "random_state": spec.training.seed,
            "n_jobs": training_threads(),
        }
        return estimator(**{**defaults, **params})
    multiclass = spec.label.task == "multiclass"
    defaults = {
        # One intercept shared by the classes (softmax ignores a shift common to all): the per-class vector
        # XGBoost 3 estimates otherwise cannot be written in the JSON the cluster's FIL backend reads.
        **({"base_score": 0.5} if multiclass else {}),
        "objective": "multi:softprob" if multiclass else "binary:logistic",
        "eval_metric": "mlogloss" if multiclass else "logloss",
        "early_stopping_rounds": spec.training.early_stopping_rounds,
        "random_state": spec.training.seed,
        "n_jobs": training_threads(),
    }
    return estimator(**{**defaults, **params})


def _rounds_to_keep(model: Any) -> int:
    """Boosting rounds up to and including the best validation round (all of them without early stopping)."""
    if model.get_params().get("early_stopping_rounds"):
        return int(model.best_iteration) + 1
    return int(model.get_booster().num_boosted_rounds())
