"""Export a model bundle as a Triton model repository, for the cluster and for local mode, and prove that the
exported artifact answers like the trained model.

    dest/
      export.json                          model, artifact, backends, parity
      cluster/<model>/config.pbtxt         native backend (onnxruntime | fil | ...), GPU when the spec says so
      cluster/<model>/1/<artifact>
      local/<model>/config.pbtxt           Python backend, CPU
      local/<model>/1/model.py             runs the same artifact (python_backend_model.py)
      local/<model>/1/<artifact>

The framework plug-in writes the artifact (`export_triton_artifact(bundle, info, version_dir) -> file name`);
this module lays out the repository, renders the configs (triton_config.py) and checks parity. The export
step of the pipeline calls it, and so do the benchmarks and tests that need a servable model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.bundle import BUNDLE_FILE, BundleInfo
from core.encoding import ENCODER_FILE
from core.frameworks.registry import get_framework
from core.spec.model import ModelSpec
from inference import python_backend_model
from inference.triton_config import Target, render_config

VERSION = "1"  # one version per repository: MLflow versions the repository as a whole
EXPORT_FILE = "export.json"
# Triton tensors are float32 and the exported graph computes in float32, while the native predictor may
# compute in float64 (scikit-learn) or accumulate differently; probabilities in [0, 1] then differ by
# ~1e-7. 1e-5 leaves room for that rounding and still catches a wrong feature order or a lost transform.
DEFAULT_TOLERANCE = 1e-5
LOCAL_ARTIFACTS = python_backend_model.KNOWN_ARTIFACTS
# What the KServe transformer downloads (inference/deploy/render.py points its STORAGE_URI here).
TRANSFORMER_FOLDER = "transformer"
TRANSFORMER_FILES = (BUNDLE_FILE, ENCODER_FILE)


class ParityError(ValueError):
    """The exported artifact's outputs differ from the trained model's by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    model_name: str
    framework: str
    artifact: str
    repository: Path
    backends: dict[str, str]
    parity_max_abs_diff: float | None
    parity_rows: int
    tolerance: float

    def model_dir(self, target: Target) -> Path:
        return self.repository / target / self.model_name

    def to_json(self) -> dict:
        return {**asdict(self), "repository": str(self.repository)}


def export_repository(
    bundle_dir: str | Path,
    spec: ModelSpec,
    dest: str | Path,
    test_frame: pd.DataFrame | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportResult:
    """Write `dest/cluster/<spec.name>/` and `dest/local/<spec.name>/` and, when `test_frame` is given,
    check that the artifact reproduces `predict_proba` on it within `tolerance` (max absolute difference).
    """
    bundle_dir, dest = Path(bundle_dir), Path(dest)
    info = BundleInfo.load(bundle_dir)
    if info.framework != spec.framework:
        raise ValueError(
            f"{bundle_dir}: bundle framework {info.framework!r} != spec framework {spec.framework!r}"
        )
    cluster_version = _fresh_model_dir(dest, "cluster", spec.name) / VERSION
    cluster_version.mkdir(parents=True)
    artifact = _write_artifact(bundle_dir, info, cluster_version)
    _write_cluster_model(cluster_version.parent, info, spec, artifact)
    _write_local_model(_fresh_model_dir(dest, "local", spec.name), cluster_version / artifact, info, spec)
    _write_transformer_files(bundle_dir, dest / TRANSFORMER_FOLDER)

    max_diff, rows = None, 0
    if test_frame is not None:
        max_diff = check_parity(bundle_dir, info, cluster_version / artifact, test_frame, tolerance)
        rows = len(test_frame)
    result = ExportResult(
        model_name=spec.name,
        framework=info.framework,
        artifact=artifact,
        repository=dest,
        backends={"cluster": spec.serving.triton_backend, "local": "python"},
        parity_max_abs_diff=max_diff,
        parity_rows=rows,
        tolerance=tolerance,
    )
    (dest / EXPORT_FILE).write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    return result


def _write_transformer_files(bundle_dir: Path, dest: Path) -> None:
    """The feature encoding the transformer applies before Triton; tabular bundles only (the text model
    takes token ids and has no encoder)."""
    if not (bundle_dir / ENCODER_FILE).is_file():
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in TRANSFORMER_FILES:
        shutil.copy2(bundle_dir / name, dest / name)


def check_parity(
    bundle_dir: Path, info: BundleInfo, artifact_path: Path, frame: pd.DataFrame, tolerance: float
) -> float:
    """Max absolute difference between the artifact's and the native model's probabilities on `frame`."""
    if frame.empty:
        raise ValueError(f"{bundle_dir}: parity check needs at least one test row")
    predictor = get_framework(info.framework).load(bundle_dir, info)
    expected = np.asarray(predictor.predict_proba(frame), dtype=np.float64)
    run = python_backend_model.load_artifact(artifact_path, n_outputs=_n_outputs(info))
    got = run(predictor.encode(frame)).astype(np.float64)
    if got.shape != expected.shape:
        raise ParityError(
            f"{artifact_path}: exported model returns shape {got.shape}, the trained model {expected.shape}"
        )
    max_diff = float(np.max(np.abs(got - expected)))
    if not max_diff <= tolerance:  # also catches NaN
        raise ParityError(
            f"{artifact_path}: exported model differs from the trained model by up to {max_diff:.3g} "
            f"on {len(frame)} test rows (tolerance {tolerance:g})"
        )
    return max_diff


def _fresh_model_dir(dest: Path, target: Target, name: str) -> Path:
    """An empty model folder: files left by an earlier export must not be served with the new ones."""
    model_dir = dest / target / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    return model_dir


def _write_artifact(bundle_dir: Path, info: BundleInfo, version_dir: Path) -> str:
    artifact = get_framework(info.framework).export_triton_artifact(bundle_dir, info, version_dir)
    artifact = Path(artifact).name
    if not (version_dir / artifact).is_file():
        raise FileNotFoundError(f"{version_dir}: {info.framework} export did not write {artifact!r}")
    return artifact


def _write_cluster_model(model_dir: Path, info: BundleInfo, spec: ModelSpec, artifact: str) -> None:
    serving = spec.serving
    if serving.triton_backend == "python":  # the cluster runs the same Python model as local mode
        _copy_model_py(model_dir / VERSION)
    text = render_config(spec.name, info.triton_inputs, info.triton_outputs, serving, "cluster", artifact)
    (model_dir / "config.pbtxt").write_text(text)


def _write_local_model(model_dir: Path, artifact_path: Path, info: BundleInfo, spec: ModelSpec) -> None:
    if artifact_path.name not in LOCAL_ARTIFACTS:
        raise ValueError(
            f"{artifact_path}: local Triton serves only {' or '.join(LOCAL_ARTIFACTS)}; "
            f"export {spec.name} to one of them"
        )
    version_dir = model_dir / VERSION
    version_dir.mkdir(parents=True)
    shutil.copy2(artifact_path, version_dir / artifact_path.name)
    _copy_model_py(version_dir)
    text = render_config(
        spec.name, info.triton_inputs, info.triton_outputs, spec.serving, "local", artifact_path.name
    )
    (model_dir / "config.pbtxt").write_text(text)


def _copy_model_py(version_dir: Path) -> None:
    shutil.copy2(Path(python_backend_model.__file__), version_dir / "model.py")


def _n_outputs(info: BundleInfo) -> int:
    return int(info.triton_outputs[0]["dims"][-1])
