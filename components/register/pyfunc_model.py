"""Log a model bundle as an MLflow pyfunc model (core/bundle_pyfunc.py) that stands alone: its code (the
`core` package, copied without caches) travels in the model through `code_paths`, its pip requirements are
pinned to what is installed here, and signature and input example come from the training set's dtypes."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

import core
from core.bundle import BundleInfo, load_predictor
from core.bundle_pyfunc import BundleModel
from core.frameworks.registry import get_framework
from core.registry import BUNDLE_ARTIFACT, quiet_mlflow

MODEL_ARTIFACT_NAME = "model"
EXAMPLE_ROWS = 5
# Import names every predictor needs at load time: MLflow's and those of the `core` code the model
# carries (settings, specs, Parquet); each framework plug-in adds its own (PIP_MODULES).
_BASE_IMPORTS = (
    "mlflow", "cloudpickle", "numpy", "pandas", "pyarrow", "pydantic", "pydantic_settings", "yaml",
)  # fmt: skip
CORE_PACKAGE = Path(core.__file__).resolve().parent


def example_rows(info: BundleInfo, frame: pd.DataFrame, rows: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """The first rows of the bundle's raw inputs, with the dtypes of the whole training set.

    MLflow enforces the signature on every predict and refuses lossy casts both ways (int64 -> double,
    double with NaN -> long), so the column types must be the ones scoring data really has: the training
    set's, where a feature that can be missing is already float.
    """
    missing = [c for c in info.inputs if c not in frame.columns]
    if missing:
        raise ValueError(f"register: input example lacks the bundle's input columns {', '.join(missing)}")
    return frame[list(info.inputs)].head(rows).reset_index(drop=True)


def pip_requirements(framework: str) -> list[str]:
    """Pinned requirements for loading a `framework` bundle, as installed here.

    Listed explicitly because MLflow's inference would load the model once more in a subprocess to see
    what it imports, which costs seconds and finds the same list.
    """
    distributions = packages_distributions()
    requirements: list[str] = []
    for module in (*_BASE_IMPORTS, *get_framework(framework).PIP_MODULES):
        for dist in _preferred_distributions(distributions.get(module, [module])):
            requirement = _pinned(dist)
            if requirement not in requirements:
                requirements.append(requirement)
    return requirements


def _preferred_distributions(candidates: list[str]) -> list[str]:
    # `mlflow` is provided by three distributions (mlflow, mlflow-skinny, mlflow-tracing); the full one
    # pulls in the others.
    return ["mlflow"] if "mlflow" in candidates else candidates[:1]


def _pinned(dist: str) -> str:
    try:
        return f"{dist}=={version(dist)}"
    except PackageNotFoundError:
        return dist


def log_bundle_model(
    bundle_dir: Path, input_example: pd.DataFrame, name: str = MODEL_ARTIFACT_NAME
) -> ModelInfo:
    """Log the bundle as a pyfunc model in the active run, with signature and input example."""
    bundle_dir = Path(bundle_dir)
    info = BundleInfo.load(bundle_dir)
    example = example_rows(info, input_example)
    predictions = _predict_example(bundle_dir, example)
    with quiet_mlflow(), warnings.catch_warnings(), tempfile.TemporaryDirectory() as scratch:
        code = Path(scratch) / CORE_PACKAGE.name  # MLflow puts code/ on sys.path: `import core` works
        shutil.copytree(CORE_PACKAGE, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Integer columns are kept on purpose (see `example_rows`); MLflow warns about each one.
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=BundleModel(),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            signature=infer_signature(example, predictions),
            input_example=example,
            pip_requirements=pip_requirements(info.framework),
            code_paths=[str(code)],
        )


def _predict_example(bundle_dir: Path, example: pd.DataFrame) -> pd.DataFrame:
    model = BundleModel()
    model.predictor = load_predictor(bundle_dir)
    return model.predict(None, example)  # type: ignore[arg-type]  # no context needed once loaded
