"""The MLflow pyfunc face of a model bundle: `mlflow.pyfunc.load_model(uri).predict(frame)` returns the
bundle's class probabilities as a DataFrame, one column per class, equal to `predict_proba(frame)`.

It lives in `core`, which imports nothing of the pipeline, so a registered model can carry its own code:
the register step logs it with `code_paths=[<this package>]`, MLflow stores that copy in the model's
`code/` folder and puts it on `sys.path` when loading. The model then loads and predicts in any
environment holding its pip requirements, with no checkout of this repository
(`mlflow models serve -m models:/<name>@champion` included), using the code it was trained with.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from core.bundle import Predictor, load_predictor
from core.registry import BUNDLE_ARTIFACT


class BundleModel(PythonModel):
    """Serves a bundle through pyfunc: probabilities per class, columns named by `info.classes`."""

    def load_context(self, context: PythonModelContext) -> None:
        self.predictor: Predictor = load_predictor(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        proba = self.predictor.predict_proba(model_input)
        return pd.DataFrame(proba, columns=list(self.predictor.info.classes), index=model_input.index)
