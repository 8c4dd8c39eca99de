"""Export a model bundle as a Triton model repository, for the cluster and for local mode, and prove that the
exported artifact answers like the trained model.

    dest/
      export.json                          model, artifact, backends, parity
      cluster/<model>/config.pbtxt         native backend (onnxruntime | fil | ...), GPU when the spec says so
      cluster/<model>/1/<artifact>
      local/<model>/config.pbtxt           Python backend, CPU
      local/<model>/1/model.py             runs the same artifact(s) (python_backend_model.py)
      local/<model>/1/<artifact>

Every tabular model takes its raw features, one named input each (core/raw_features.py), and applies its
own version's preprocessing. A plug-in's artifact takes the encoded matrix (`input__0`: the encoder's
`scale(transform(rows))`); an ONNX artifact gets the encoder's preprocessing graph (core/encoding_onnx.py)
merged in front of it here. An artifact that cannot hold it (XGBoost's trees for FIL) is served as a Triton
ensemble instead:

      cluster/<model>/config.pbtxt               ensemble: raw features -> <model>_preprocess -> <model>_trees
      cluster/<model>/1/ENSEMBLE                 (Triton wants a version folder; MLflow keeps no empty one)
      cluster/<model>_preprocess/1/model.onnx    the encoder's graph (core/encoding_onnx.py), onnxruntime, CPU
      cluster/<model>_trees/1/xgboost.json       the FIL backend, on the input__0 matrix
      local/<model>/1/preprocess.onnx, xgboost.json   both steps in one Python-backend model, in order

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

from core.bundle import BundleInfo
from core.encoding import ENCODER_FILE, FeatureEncoder
from core.encoding_onnx import PREPROCESSED, preprocessing_model, with_preprocessing
from core.frameworks.base import TABULAR_INPUT
from core.frameworks.registry import get_framework
from core.spec.model import ModelSpec
from inference import python_backend_model
from inference.triton_config import Target, render_config, render_ensemble_config

VERSION = "1"  # one version per repository: MLflow versions the repository as a whole
EXPORT_FILE = "export.json"
# Triton tensors are float32 and the exported graph computes in float32, while the native predictor may
# compute in float64 (scikit-learn) or accumulate differently; probabilities in [0, 1] then differ by
# ~1e-7. 1e-5 leaves room for that rounding and still catches a wrong feature order or a lost transform.
DEFAULT_TOLERANCE = 1e-5
LOCAL_ARTIFACTS = python_backend_model.KNOWN_ARTIFACTS
PREPROCESS_FILE = "preprocess.onnx"  # the ensemble's first step, in the local model's folder
PREPROCESS_SUFFIX, TREES_SUFFIX = "_preprocess", "_trees"  # the ensemble's step models
ENSEMBLE_MARKER = "ENSEMBLE"


PARITY_BATCH_ROWS = 1024  # test rows per call of the exported chain in the parity check


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
    for suffix in (PREPROCESS_SUFFIX, TREES_SUFFIX):  # an earlier export's step models must not linger
        shutil.rmtree(dest / "cluster" / f"{spec.name}{suffix}", ignore_errors=True)
    cluster_version = _fresh_model_dir(dest, "cluster", spec.name) / VERSION
    cluster_version.mkdir(parents=True)
    artifact = _write_artifact(bundle_dir, info, cluster_version)
    # A tabular bundle (it has an encoder) serves its preprocessing inside: in the ONNX graph, else as an
    # ensemble's first step (the text model takes token ids and has no encoder).
    encoder = FeatureEncoder.load(bundle_dir) if (bundle_dir / ENCODER_FILE).is_file() else None
    if encoder is not None and not artifact.endswith(".onnx"):
        chain = _write_cluster_ensemble(dest / "cluster", encoder, info, spec, cluster_version / artifact)
    else:
        if encoder is not None:
            _prepend_preprocessing(cluster_version / artifact, encoder)
        _write_cluster_model(cluster_version.parent, info, spec, artifact)
        chain = [cluster_version / artifact]
    _write_local_model(_fresh_model_dir(dest, "local", spec.name), chain, info, spec)

    max_diff, rows = None, 0
    if test_frame is not None:
        max_diff = check_parity(bundle_dir, info, chain, test_frame, tolerance)
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


def _prepend_preprocessing(path: Path, encoder: FeatureEncoder) -> None:
    import onnx

    estimator = onnx.load(path)
    if [i.name for i in estimator.graph.input] != [TABULAR_INPUT]:
        raise ValueError(f"{path}: a tabular ONNX artifact takes the one matrix input {TABULAR_INPUT!r}")
    onnx.save(with_preprocessing(estimator, encoder, TABULAR_INPUT), path)


def _write_cluster_ensemble(
    cluster: Path, encoder: FeatureEncoder, info: BundleInfo, spec: ModelSpec, trees_file: Path
) -> list[Path]:
    """The ensemble and its two step models (layout in the module doc); returns the step files in order."""
    name, serving = spec.name, spec.serving
    width = [{"name": PREPROCESSED, "datatype": "FP32", "dims": [len(encoder.output_names)]}]
    matrix = [{**width[0], "name": TABULAR_INPUT}]
    pre_dir = _fresh_model_dir(cluster.parent, "cluster", name + PREPROCESS_SUFFIX)
    (pre_dir / VERSION).mkdir()
    (pre_dir / VERSION / "model.onnx").write_bytes(preprocessing_model(encoder).SerializeToString())
    text = render_config(pre_dir.name, info.triton_inputs, width, serving, "cluster", backend="onnxruntime")
    (pre_dir / "config.pbtxt").write_text(text)
    trees_dir = _fresh_model_dir(cluster.parent, "cluster", name + TREES_SUFFIX)
    (trees_dir / VERSION).mkdir()
    shutil.move(trees_file, trees_dir / VERSION / trees_file.name)
    text = render_config(trees_dir.name, matrix, info.triton_outputs, serving, "cluster", trees_file.name)
    (trees_dir / "config.pbtxt").write_text(text)
    names = [str(t["name"]) for t in info.triton_inputs]
    steps = [
        (pre_dir.name, {n: n for n in names}, {PREPROCESSED: PREPROCESSED}),
        (trees_dir.name, {TABULAR_INPUT: PREPROCESSED}, {o["name"]: o["name"] for o in info.triton_outputs}),
    ]
    text = render_ensemble_config(name, info.triton_inputs, info.triton_outputs, serving, steps)
    (cluster / name / "config.pbtxt").write_text(text)
    (cluster / name / VERSION / ENSEMBLE_MARKER).write_text(
        f"Triton ensemble: {pre_dir.name} then {trees_dir.name} (config.pbtxt)\n"
    )
    return [pre_dir / VERSION / "model.onnx", trees_dir / VERSION / trees_file.name]


def check_parity(
    bundle_dir: Path,
    info: BundleInfo,
    chain: list[Path],
    frame: pd.DataFrame,
    tolerance: float,
    batch_rows: int = PARITY_BATCH_ROWS,
) -> float:
    """Max absolute difference between the served model's and the native model's probabilities on
    `frame`: the artifact(s) in `chain` run on the raw-feature tensors a client sends."""
    if frame.empty:
        raise ValueError(f"{bundle_dir}: parity check needs at least one test row")
    predictor = get_framework(info.framework).load(bundle_dir, info)
    expected = np.asarray(predictor.predict_proba(frame), dtype=np.float64)
    artifact_path = chain[-1]
    run = python_backend_model.load_chain(chain, n_outputs=_n_outputs(info))
    # In slices, each encoded as a client sends it: one ONNX Runtime call on every test row holds every
    # row's activations at once (the transformer's export took 15 GB for 17,897 messages at 1x the demo
    # data), and encoding the whole set first holds every row's tensors (the text model's: 1 KB a
    # message). The answers go into one array written in place: a small answer kept alive per slice,
    # between each slice's large freed buffers, fragments glibc's heap, which then grows with the test
    # set (as in the trained model's own scoring, core/frameworks/text_bert.py).
    got = np.empty(expected.shape, dtype=np.float64)
    for start in range(0, len(frame), batch_rows):
        rows = slice(start, start + batch_rows)
        answer = run(predictor.encode(frame.iloc[rows]))
        if answer.shape != expected[rows].shape:
            raise ParityError(
                f"{artifact_path}: exported model returns shape {answer.shape} for rows {start} on, "
                f"the trained model {expected[rows].shape}"
            )
        got[rows] = answer
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


def _write_local_model(model_dir: Path, chain: list[Path], info: BundleInfo, spec: ModelSpec) -> None:
    if chain[-1].name not in LOCAL_ARTIFACTS:
        raise ValueError(
            f"{chain[-1]}: local Triton serves only {' or '.join(LOCAL_ARTIFACTS)}; "
            f"export {spec.name} to one of them"
        )
    version_dir = model_dir / VERSION
    version_dir.mkdir(parents=True)
    # An ensemble's preprocessing step is renamed: both steps' files share one version folder.
    names = [PREPROCESS_FILE, chain[-1].name] if len(chain) == 2 else [chain[0].name]
    for path, name in zip(chain, names, strict=True):
        shutil.copy2(path, version_dir / name)
    _copy_model_py(version_dir)
    text = render_config(
        spec.name, info.triton_inputs, info.triton_outputs, spec.serving, "local", " ".join(names)
    )
    (model_dir / "config.pbtxt").write_text(text)


def _copy_model_py(version_dir: Path) -> None:
    shutil.copy2(Path(python_backend_model.__file__), version_dir / "model.py")


def _n_outputs(info: BundleInfo) -> int:
    return int(info.triton_outputs[0]["dims"][-1])
