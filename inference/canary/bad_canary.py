"""Make a staged canary bad on purpose (`--bad-canary error|slow`), so demos and tests see a rollback.

The staged `<model>__v<version>/1/model.py` (the exported Python-backend model) gets a wrapper appended
around `TritonPythonModel.execute`: `error` fails a share of executions the way a crashing backend does
(HTTP 500 from Triton, 502 from the router; Triton counts each of their requests in
`nv_inference_request_failure{reason="BACKEND"}`, the canary's error signal), `slow` sleeps before
answering. Raising is the failure Triton counts: a response that merely carries an error is counted as a
success (`nv_inference_request_success`), seen with the Triton the serving environment ships. Only the
staged copy changes; the registered artifacts stay as they are.
"""

from __future__ import annotations

from pathlib import Path

MODES = ("error", "slow")
ERROR_SHARE = 0.5
DELAY_S = 0.05

_ERROR = f"""

# --- bad canary (inference.canary.bad_canary, mode "error"): fail a share of requests on purpose.
import random as _bad_random

_bad_draws = _bad_random.Random(0)
_exported_execute = TritonPythonModel.execute


def _failing_execute(self, requests):
    import triton_python_backend_utils as pb_utils

    if _bad_draws.random() < {ERROR_SHARE}:
        raise pb_utils.TritonModelException("bad canary: injected failure")
    return _exported_execute(self, requests)


TritonPythonModel.execute = _failing_execute
"""

_SLOW = f"""

# --- bad canary (inference.canary.bad_canary, mode "slow"): answer late on purpose.
import time as _bad_time

_exported_execute = TritonPythonModel.execute


def _slow_execute(self, requests):
    _bad_time.sleep({DELAY_S})
    return _exported_execute(self, requests)


TritonPythonModel.execute = _slow_execute
"""


def sabotage(staged_model_dir: str | Path, mode: str) -> Path:
    """Append the `mode` wrapper to the staged model's `1/model.py`; returns that file."""
    if mode not in MODES:
        raise ValueError(f"bad canary: unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    model_py = Path(staged_model_dir) / "1" / "model.py"
    if not model_py.is_file():
        raise FileNotFoundError(f"{model_py}: no Python-backend model to make bad")
    with model_py.open("a") as handle:
        handle.write(_ERROR if mode == "error" else _SLOW)
    return model_py
