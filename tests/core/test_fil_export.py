"""The cluster's FIL path, proven rather than assumed: the `xgboost.json` the export writes is loaded with the
Treelite that the pinned Triton release's FIL backend links, and predicts what XGBoost predicts.

Source of the version table: triton-inference-server/fil_backend, branch r<release>,
cmake/thirdparty/get_treelite.cmake (`find_and_configure_treelite(VERSION ...)`); r25.10 is commit 3876644f
(Treelite 4.4.1, pinned tag 386bd0de). Bumping the Triton image in manifests/serving fails
`test_the_pinned_triton_release_has_a_known_treelite` until the table below names its Treelite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import treelite

from components.train.splits import time_split
from core.frameworks import xgboost_model
from core.frameworks.xgboost_model import fil_compatible_json
from core.images import TRITON_IMAGE
from core.spec.model import ModelSpec
from inference.python_backend_model import load_artifact, load_chain
from inference.triton_repository import export_repository
from tests.helpers.specs import fixture_spec

FIL_TREELITE = {"25.10": "4.4.1"}  # Triton release -> Treelite in its FIL backend (see the docstring)


def pinned_triton_release() -> str:
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d+\.\d+)-py3", TRITON_IMAGE)
    assert match, f"core/images.py: TRITON_IMAGE {TRITON_IMAGE!r} is not an NGC release tag"
    return match.group(1)


def rows(n: int, classes: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(2, n))
    colour = rng.choice(["red", "green", "blue"], n)
    if classes == 2:
        label = (x1 + 0.5 * x2 + rng.normal(scale=0.7, size=n) > 0).astype("int64")
    else:
        logits = np.stack([2.0 * x1, 2.0 * x2, 2.5 * (colour == "blue")], axis=1) + rng.gumbel(size=(n, 3))
        label = np.array(["a", "b", "c"])[logits.argmax(axis=1)]
    return pd.DataFrame(
        {
            "row_id": np.arange(n),
            "event_timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "x1": x1,
            "x2": x2,
            "colour": colour,
            "kind": label,
        }
    )


def spec_for(classes: int) -> ModelSpec:
    task = {"task": "binary"} if classes == 2 else {"task": "multiclass", "classes": ["a", "b", "c"]}
    return fixture_spec(
        "conversion-xgboost",
        inputs={"feature_service": "toy_v1", "entity_keys": ["row_id"]},
        label={"dataset": "toy", "column": "kind", **task},
        training={"search": None},
        evaluation={"slices": [], "behaviour": []},
    )


def test_the_pinned_triton_release_has_a_known_treelite() -> None:
    release = pinned_triton_release()
    assert release in FIL_TREELITE, f"Triton {release}: look up its FIL backend's Treelite (see docstring)"
    assert treelite.__version__ == FIL_TREELITE[release], "platform.requirements.in must pin that Treelite"


@pytest.mark.parametrize("classes", [2, 3])
def test_the_cluster_ensemble_predicts_like_xgboost(classes: int, tmp_path: Path) -> None:
    """The cluster's two steps as their backends run them: the preprocessing graph in ONNX Runtime, its
    matrix into the trees as FIL's Treelite reads them; and the local model's chain of the same files."""
    spec = spec_for(classes)
    data = rows(600, classes)
    data.loc[data.index % 7 == 0, "x1"] = np.nan  # imputed inside the ensemble
    data.loc[data.index % 11 == 0, "colour"] = None
    splits = time_split(data, spec.training.split)
    test = splits.test.assign(colour=splits.test["colour"].where(splits.test.index % 5 != 0, "purple"))
    params = {"n_estimators": 40, "max_depth": 3}
    predictor, _ = xgboost_model.fit(spec, splits.train, splits.valid, params, tmp_path / "bundle")
    export_repository(tmp_path / "bundle", spec, tmp_path / "repo", test)
    cluster = tmp_path / "repo" / "cluster"
    raw = predictor.encode(test)  # the raw features a client sends
    expected = predictor.predict_proba(test)

    preprocess = load_artifact(cluster / f"{spec.name}_preprocess" / "1" / "model.onnx", n_outputs=classes)
    matrix = preprocess(raw)
    trees = cluster / f"{spec.name}_trees" / "1" / "xgboost.json"
    forest = treelite.frontend.load_xgboost_model(str(trees))  # what FIL does with model_type xgboost_json
    fil = np.asarray(treelite.gtil.predict(forest, matrix)).reshape(len(matrix), -1)
    fil = np.column_stack([1.0 - fil[:, 0], fil[:, 0]]) if classes == 2 else fil
    np.testing.assert_allclose(fil, expected, atol=1e-5)
    local_dir = tmp_path / "repo" / "local" / spec.name / "1"  # the local Python backend's chain
    local = load_chain([local_dir / "preprocess.onnx", local_dir / "xgboost.json"], n_outputs=classes)(raw)
    np.testing.assert_allclose(local, expected, atol=1e-5)


def test_the_native_json_is_what_fil_cannot_read(tmp_path: Path) -> None:
    """Why the export rewrites the file: XGBoost 3's own JSON fails in that Treelite."""
    spec = spec_for(2)
    splits = time_split(rows(300, 2), spec.training.split)
    xgboost_model.fit(spec, splits.train, splits.valid, {"n_estimators": 5}, tmp_path)
    with pytest.raises(treelite.TreeliteError):
        treelite.frontend.load_xgboost_model(str(tmp_path / xgboost_model.MODEL_FILE))


def test_per_class_base_scores_are_refused_with_the_file_named() -> None:
    document = {
        "learner": {
            "gradient_booster": {"model": {"cats": {"enc": [], "feature_segments": [], "sorted_idx": []}}},
            "learner_model_param": {"base_score": "[1E-1,2E-1,3E-1]"},
        }
    }
    with pytest.raises(ValueError, match=r"^m\.json: per-class base scores \[1E-1,2E-1,3E-1\] cannot be"):
        fil_compatible_json(json.dumps(document), where="m.json")
