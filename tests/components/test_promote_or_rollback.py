"""promote_or_rollback's guards (promotion and rollback themselves run in tests/inference/
test_local_rollout.py and the pipeline tests): no canary is passed on, and a version that is no longer
the challenger (decided already, or replaced) is refused rather than promoted."""

from __future__ import annotations

import mlflow
import pytest

from core.registry import configure_tracking
from inference.canary.finish import finish_rollout


def test_no_canary_is_passed_on_without_touching_anything(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    lines: list[str] = []
    assert finish_rollout("no-such-model", "1", "no-canary", "local", say=lines.append) == "no-canary"
    assert lines == ["[promote_or_rollback] no-such-model: no canary to promote or roll back"]
    assert list(tmp_path.iterdir()) == []


def test_a_version_that_is_not_the_challenger_is_refused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_tracking()
    try:
        mlflow.MlflowClient().create_registered_model("conversion-sklearn")
        with pytest.raises(LookupError, match=r"v2 is no longer the challenger \(challenger: none\)"):
            finish_rollout("conversion-sklearn", "2", "promote", "local")
    finally:
        mlflow.set_tracking_uri(None)
