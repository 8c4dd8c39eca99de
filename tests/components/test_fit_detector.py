"""The fit_detector step from the platform env: it fits with the real serving interpreter (alibi-detect)
and the bundle it writes loads and scores there."""

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kfp import compiler, dsl, local
from kfp.dsl import Artifact, Dataset

from components.fit_detector.component import fit_detector
from components.fit_detector.step import (
    CANDIDATE_VERSION,
    FitDetectorError,
    alibi_available,
    run,
    serving_python,
    stamp_version,
)
from core.images import SERVING_IMAGE
from core.paths import REPO_ROOT
from core.settings import variable
from core.training_set import content_sha256, save_training_set
from tests.helpers.demo_features import CONVERSION_FEATURES
from tests.helpers.specs import FIXTURE_SPEC_DIR

MODEL = "conversion-xgboost"
SHIFTED = "sessions_7d"
WINDOW = 300

# Loads the bundle the way the drift service does and scores a clean and a shifted window.
SCORE_SCRIPT = """
import json, pathlib, sys
import pandas as pd
from monitoring.detectors.kinds import load_detector
detector = load_detector(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
clean = detector.score(frame)
shifted = detector.score(frame.assign(**{sys.argv[3]: frame[sys.argv[3]] * 5 + 10}))
print(json.dumps({
    "model": detector.model, "version": detector.version, "features": detector.features,
    "online": detector.online, "clean": [clean.drift, clean.rows, clean.p_values],
    "shifted": [shifted.drift, shifted.rows, shifted.p_values], "threshold": shifted.threshold,
    "files": sorted(p.name for p in pathlib.Path(sys.argv[1]).iterdir()),
}))
"""


@pytest.fixture(scope="module")
def training_set_path(conversion_training_set: pd.DataFrame, tmp_path_factory) -> Path:
    frame = conversion_training_set
    lineage = {"feature_service": "conversion_xgboost_v1", "rows": len(frame)}
    lineage["content_sha256"] = content_sha256(frame)
    return save_training_set(frame, lineage, tmp_path_factory.mktemp("set") / "training.parquet")


@dsl.pipeline(name="fit-detector-only")
def fit_only(training_set_uri: str) -> Artifact:
    data = dsl.importer(artifact_uri=training_set_uri, artifact_class=Dataset, reimport=False)
    return fit_detector(model=MODEL, training_set=data.output).outputs["detector"]


@pytest.fixture(scope="module")
def fitted(training_set_path: Path, tmp_path_factory) -> tuple[dict, Path]:
    """The component run by kfp.local in this (platform) env, as the local pipeline runs it."""
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path_factory.mktemp("pipeline_root")),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(variable("spec_dir"), str(FIXTURE_SPEC_DIR))  # the step reads the spec by name
        detector = fit_only(training_set_uri=str(training_set_path)).output
    return dict(detector.metadata), Path(detector.path)


def score_in_serving_env(detector_dir: Path, window: Path) -> dict:
    done = subprocess.run(
        [str(serving_python()), "-c", SCORE_SCRIPT, str(detector_dir), str(window), SHIFTED],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_platform_env_has_no_alibi_so_the_step_uses_the_serving_interpreter():
    assert not alibi_available()


@pytest.mark.serving
def test_component_writes_a_tabular_bundle_with_the_candidate_version(fitted):
    summary, detector_dir = fitted
    manifest = json.loads((detector_dir / "detector.json").read_text())
    assert manifest["kind"] == "tabular" and manifest["model"] == MODEL
    assert manifest["version"] == CANDIDATE_VERSION
    assert sorted(manifest["features"]) == sorted(CONVERSION_FEATURES)
    assert (detector_dir / "alibi").is_dir()
    assert summary["fitted"] == "serving-env" and summary["kind"] == "tabular"
    assert sorted(summary["features"]) == sorted(CONVERSION_FEATURES)


@pytest.mark.serving
def test_serving_env_loads_the_stamped_bundle_and_flags_only_a_shifted_window(
    fitted, conversion_training_set, tmp_path
):
    _, detector_dir = fitted
    stamped = stamp_version(detector_dir, tmp_path / "registered", "7")
    window = tmp_path / "window.parquet"
    conversion_training_set.tail(WINDOW).to_parquet(window, index=False)

    result = score_in_serving_env(stamped, window)

    assert result["model"] == MODEL and result["version"] == "7" and not result["online"]
    assert sorted(result["features"]) == sorted(CONVERSION_FEATURES)
    clean_drift, clean_rows, _ = result["clean"]
    assert not clean_drift and clean_rows == WINDOW
    shifted_drift, _, p_values = result["shifted"]
    assert shifted_drift and min(p_values, key=p_values.get) == SHIFTED
    # No model encoder travels with the detector: the logged tensors are the raw features it scores.
    assert not [name for name in result["files"] if "encoder" in name]
    # Stamping copies: the pipeline's own artifact keeps its placeholder.
    assert json.loads((detector_dir / "detector.json").read_text())["version"] == CANDIDATE_VERSION


def test_missing_serving_interpreter_is_a_one_line_error(
    training_set_path, tmp_path, monkeypatch, fixture_specs
):
    absent = tmp_path / "no-venv" / "bin" / "python"
    monkeypatch.setenv(variable("serving_python"), str(absent))
    with pytest.raises(FitDetectorError) as err:
        run(MODEL, str(training_set_path), str(tmp_path / "out"))
    message = str(err.value)
    assert str(absent) in message and MODEL in message and variable("serving_python") in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


@pytest.mark.serving
def test_a_failing_fit_reports_the_fitters_error_in_one_line(tmp_path, fixture_specs):
    with pytest.raises(FitDetectorError) as err:
        run(MODEL, str(tmp_path / "absent.parquet"), str(tmp_path / "out"))
    message = str(err.value)
    assert "exited 2" in message and "absent.parquet" in message and "\n" not in message


def test_component_compiles_for_the_serving_image(tmp_path):
    package = tmp_path / "fit_detector.yaml"
    compiler.Compiler().compile(fit_detector, str(package))
    compiled = yaml.safe_load(package.read_text())
    (executor,) = compiled["deploymentSpec"]["executors"].values()
    container = executor["container"]
    assert container["image"] == SERVING_IMAGE
    assert "from components.fit_detector.step import run" in "\n".join(container["command"])
    definition = compiled["root"]["inputDefinitions"]
    assert set(definition["parameters"]) == {"model"} and set(definition["artifacts"]) == {"training_set"}
    assert set(compiled["root"]["outputDefinitions"]["artifacts"]) == {"detector"}
