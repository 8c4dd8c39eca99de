"""deploy_canary's guards (the served path is covered by tests/inference/test_local_rollout.py and the
pipeline tests): the serving mode is checked, local mode needs a live runtime, and the demo's bad-canary
switch is parsed per model."""

from __future__ import annotations

import pytest

from core.settings import variable
from inference.canary.deploy import deploy_canary
from inference.canary.release import bad_canary_mode


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLOPS_SERVING_RUNTIME", raising=False)
    return tmp_path


def test_an_unknown_serving_mode_is_refused_in_one_line(home) -> None:
    with pytest.raises(ValueError, match=r"^serving_mode 'space': expected one of cluster, local$"):
        deploy_canary("conversion-sklearn", "1", "champion", "space")


def test_local_mode_without_a_live_runtime_says_how_to_get_one(home) -> None:
    with pytest.raises(LookupError, match=r"no live local runtime at .*runtime.json; start one"):
        deploy_canary("conversion-sklearn", "1", "champion", "local")
    (home / "serving").mkdir()
    # a runtime.json whose process is gone is not a live runtime
    (home / "serving" / "runtime.json").write_text(
        '{"router_http_url": "http://127.0.0.1:1", "router_grpc_address": null, '
        '"triton_http_url": "http://127.0.0.1:2", "triton_grpc_address": "127.0.0.1:3", '
        '"triton_metrics_url": "http://127.0.0.1:4/metrics", "repository": "r", "isvc_dir": "i", '
        '"pid": 999999999}'
    )
    with pytest.raises(LookupError, match="no live local runtime"):
        deploy_canary("conversion-sklearn", "1", "champion", "local")


def test_bad_canary_switch_applies_to_every_model_or_to_the_named_ones(monkeypatch) -> None:
    monkeypatch.delenv(variable("bad_canary"), raising=False)
    assert bad_canary_mode("a") is None
    monkeypatch.setenv(variable("bad_canary"), "slow")
    assert (bad_canary_mode("a"), bad_canary_mode("b")) == ("slow", "slow")
    monkeypatch.setenv(variable("bad_canary"), "a=error,b=slow")
    assert (bad_canary_mode("a"), bad_canary_mode("b"), bad_canary_mode("c")) == ("error", "slow", None)
    monkeypatch.setenv(variable("bad_canary"), "a=melt")
    with pytest.raises(ValueError, match="a=melt: expected one of error, slow"):
        bad_canary_mode("a")
