"""The framework registry: the packaged plug-ins, what the spec derives from them, and a new framework
added as one file (tests/core/forest_model.py) that trains, exports, serves on a real Triton and loads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as httpclient
import yaml

from components.register.pyfunc_model import pip_requirements
from components.train.step import train
from core.bundle import load_predictor
from core.errors import SpecError
from core.frameworks.registry import framework_names, get_framework, register_framework, unregister_framework
from core.paths import REPO_ROOT
from core.spec.model import ModelSpec, parse_spec
from inference.triton_local import TritonLocal
from inference.triton_repository import export_repository
from tests.core import forest_model
from tests.helpers.triton_clients import http_inputs

PACKAGED = {"pytorch", "sklearn", "transformers", "xgboost"}
HEAVY = ("torch", "transformers", "sklearn", "xgboost", "onnx")


def fixture_spec(framework: str, **changes: Any) -> dict[str, Any]:
    """A small tabular spec (binary, one entity key) for the framework under test."""
    spec = {
        "name": "plugin-probe",
        "description": "A probe model for the framework registry tests.",
        "framework": framework,
        "inputs": {"feature_service": "plugin_probe_v1", "entity_keys": ["account_id"]},
        "label": {"dataset": "outcomes", "column": "churned", "task": "binary"},
        "training": {
            "window": {"lookback_days": 30},
            "split": {"validation_fraction": 0.2, "test_fraction": 0.2},
            "seed": 7,
        },
        "evaluation": {"primary_metric": "roc_auc", "min_test_rows": 20},
        "serving": {"triton_backend": "onnxruntime", "max_batch_size": 64},
        "canary": {
            "traffic_percent": 10,
            "analysis_window_s": 60,
            "min_requests": 10,
            "success": {"max_error_rate": 0.05, "max_p95_latency_ratio": 2.0, "max_prediction_shift": 0.3},
        },
        "monitoring": {
            "detector": "ks",
            "window": {"size": 50, "max_age_s": 600},
            "p_value": 0.01,
            "alert_severity": "info",
        },
    }
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = spec
        for key in path:
            node = node[key]
        node[last] = value
    return spec


def probe_rows(n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "account_id": np.arange(n),
            "event_timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "logins_30d": rng.poisson(6, n).astype("float64"),
            "tickets_30d": rng.poisson(1, n).astype("int64"),
            "plan": rng.choice(["free", "team", "business"], n),
        }
    )
    logit = 1.2 - 0.35 * frame["logins_30d"] + 0.8 * frame["tickets_30d"] + (frame["plan"] == "free") * 0.9
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
    frame.loc[::17, "logins_30d"] = np.nan  # a feature that can be missing
    return frame


@pytest.fixture
def forest() -> Iterator[Any]:
    register_framework(forest_model)
    yield forest_model
    unregister_framework(forest_model.NAME)


# --------------------------------------------------------------------------------------- the registry
def test_the_packaged_frameworks_are_plugins_with_their_declarations() -> None:
    assert set(framework_names()) == PACKAGED
    assert {"fil", "python"} == get_framework("xgboost").BACKENDS
    assert get_framework("pytorch").GPU and not get_framework("sklearn").GPU
    assert get_framework("transformers").EPOCHS and not get_framework("xgboost").EPOCHS
    assert all("python" in get_framework(name).BACKENDS for name in PACKAGED)


def test_discovering_the_plugins_loads_no_training_library() -> None:
    script = (
        "import sys\n"
        "from core.frameworks.registry import frameworks\n"
        "names = sorted(frameworks())\n"
        f"print(names, [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == f"{sorted(PACKAGED)} []"


def test_a_framework_file_dropped_into_the_package_is_found(tmp_path: Path) -> None:
    """Adding a framework is one file: a copy of core/ plus forest_model.py knows the new framework."""
    shutil.copytree(REPO_ROOT / "core", tmp_path / "core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(Path(forest_model.__file__), tmp_path / "core" / "frameworks" / "forest_model.py")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "plugin-probe.yaml").write_text(yaml.safe_dump(fixture_spec("extra-trees")))
    script = (
        "from core.spec.model import load_specs\n"
        "from core.frameworks.registry import get_framework\n"
        f"(spec,) = load_specs({str(specs)!r})\n"
        "print(spec.framework, sorted(get_framework(spec.framework).BACKENDS))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "extra-trees ['onnxruntime', 'python']"


def test_the_spec_takes_its_framework_rules_from_the_plugin(forest: Any) -> None:
    with pytest.raises(
        SpecError, match=r"framework: unknown framework 'lightgbm': expected one of extra-trees, "
    ):
        parse_spec(fixture_spec("lightgbm"))
    with pytest.raises(
        SpecError,
        match=r"serving\.triton_backend: 'fil' cannot serve extra-trees models; use one of onnxruntime, py",
    ):
        parse_spec(fixture_spec("extra-trees", **{"serving.triton_backend": "fil"}))
    with pytest.raises(SpecError, match=r"training\.early_stopping_rounds: a forest does not stop early"):
        parse_spec(fixture_spec("extra-trees", **{"training.early_stopping_rounds": 5}))
    with pytest.raises(
        SpecError, match=r"training\.max_epochs: only pytorch, transformers models train in epochs"
    ):
        parse_spec(fixture_spec("extra-trees", **{"training.max_epochs": 3}))
    assert any(line.startswith("scikit-learn==") for line in pip_requirements("extra-trees"))


def test_a_plugin_without_its_functions_is_refused() -> None:
    incomplete = SimpleNamespace(
        NAME="half", BACKENDS=frozenset({"python"}), PIP_MODULES=(), GPU=False, EPOCHS=False, fit=len
    )
    with pytest.raises(TypeError, match="define check_spec, load, export_triton_artifact"):
        register_framework(incomplete)
    with pytest.raises(TypeError, match="BACKENDS must name Triton backends"):
        register_framework(
            SimpleNamespace(**{**vars(forest_model_namespace()), "BACKENDS": frozenset({"trt"})})
        )
    with pytest.raises(ValueError, match="'xgboost' is already registered"):
        register_framework(SimpleNamespace(**{**vars(forest_model_namespace()), "NAME": "xgboost"}))
    assert "half" not in framework_names()


def forest_model_namespace() -> SimpleNamespace:
    names = (
        "NAME",
        "BACKENDS",
        "PIP_MODULES",
        "GPU",
        "EPOCHS",
        "check_spec",
        "fit",
        "load",
        "export_triton_artifact",
    )
    return SimpleNamespace(**{name: getattr(forest_model, name) for name in names})


# ------------------------------------------------------------------------------- one framework, end to end
def test_a_new_framework_trains_exports_serves_and_loads(forest: Any, tmp_path: Path) -> None:
    spec: ModelSpec = parse_spec(
        fixture_spec("extra-trees", **{"training.hyperparameters": {"n_estimators": 40}})
    )
    result = train(spec, probe_rows(), tmp_path / "train", progress=lambda _: None)
    assert json.loads((result.bundle_dir / "bundle.json").read_text())["framework"] == "extra-trees"
    assert 0.5 < result.validation_score <= 1.0
    exported = export_repository(result.bundle_dir, spec, tmp_path / "repo", test_frame=result.test)
    assert exported.parity_max_abs_diff is not None and exported.parity_max_abs_diff <= 1e-5
    predictor = load_predictor(result.bundle_dir)  # through the registry, as every later step loads it
    rows = result.test.head(16)
    expected = predictor.predict_proba(rows)
    with TritonLocal(log_path=tmp_path / "triton.log").start(tmp_path / "repo" / "local") as triton:
        client = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
        # the raw features: the export put the encoder's preprocessing inside the graph
        tensors = http_inputs(httpclient, predictor.encode(rows))
        served = client.infer(spec.name, tensors).as_numpy("output__0")
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_stand_ins_give_way_to_the_package_plugins_one_by_one() -> None:
    """Two stand-ins replace packaged plug-ins; removing one brings its original back while the other
    keeps its place (a lookup in between must not clash with the remaining stand-in)."""
    originals = {name: get_framework(name) for name in ("sklearn", "xgboost")}
    stand_ins = {
        name: SimpleNamespace(**{**vars(forest_model_namespace()), "NAME": name}) for name in originals
    }
    try:
        for plugin in stand_ins.values():
            register_framework(plugin, replace=True)
        unregister_framework("sklearn")
        assert get_framework("sklearn") is originals["sklearn"]
        assert get_framework("xgboost") is stand_ins["xgboost"]
    finally:
        unregister_framework("xgboost")
        unregister_framework("sklearn")
    assert {name: get_framework(name) for name in originals} == originals
