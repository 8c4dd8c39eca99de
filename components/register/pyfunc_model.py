"""The MLflow pyfunc face of a model bundle: `mlflow.pyfunc.load_model(uri).predict(frame)` returns the
bundle's class probabilities as a DataFrame, one column per class, equal to `predict_proba(frame)`.

The bundle folder is the model's only artifact; the Python model holds no state of its own, so its
pickle is a reference to `BundleModel` and loading needs this repository's code importable (the
component images contain it; locally run from the repository root). The code is not copied into the
model: a second copy would drift from the one the images ship.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel, PythonModelContext

from core.bundle import BundleInfo, Predictor, load_predictor
from core.frameworks.registry import get_framework
from core.registry import BUNDLE_ARTIFACT, quiet_mlflow

MODEL_ARTIFACT_NAME = "model"
EXAMPLE_ROWS = 5
# Import names every predictor needs at load time; each framework plug-in adds its own (PIP_MODULES).
_BASE_IMPORTS = ("mlflow", "cloudpickle", "numpy", "pandas")


class BundleModel(PythonModel):
    """Serves a bundle through pyfunc: probabilities per class, columns named by `info.classes`."""

    def load_context(self, context: PythonModelContext) -> None:
        self.predictor: Predictor = load_predictor(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        proba = self.predictor.predict_proba(model_input)
        return pd.DataFrame(proba, columns=list(self.predictor.info.classes), index=model_input.index)


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
    with quiet_mlflow(), warnings.catch_warnings():
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
        )


def _predict_example(bundle_dir: Path, example: pd.DataFrame) -> pd.DataFrame:
    model = BundleModel()
    model.predictor = load_predictor(bundle_dir)
    return model.predict(None, example)  # type: ignore[arg-type]  # no context needed once loaded
