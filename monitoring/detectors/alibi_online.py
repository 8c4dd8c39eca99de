"""What alibi-detect's online detectors share, whichever kind wraps them (tabular `cvm_online`/`fet_online`
in `online.py`, text `mmd_online`/`lsdd_online` in `text.py`): the window-size cap and their
checkpointable state as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitoring.detectors.base import DetectorError

MAX_WINDOW = 50  # rows: short windows react within tens of requests; longer ones cost simulation time


def window_sizes(spec_window: int) -> list[int]:
    return [min(spec_window, MAX_WINDOW)]


def alibi_state(detector: Any) -> dict:
    """alibi's own online state keys as JSON-able {key: {dtype, shape, data}} (tensors as numpy)."""
    state: dict[str, Any] = {}
    for key in detector.online_state_keys:
        value = getattr(detector, key)
        if key == "t":
            state[key] = int(value)
            continue
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        state[key] = {"dtype": str(array.dtype), "shape": list(array.shape), "data": array.ravel().tolist()}
    return state


def restore_alibi_state(detector: Any, state: dict) -> None:
    missing = [k for k in detector.online_state_keys if k not in state]
    if missing:
        raise DetectorError(f"detector state: missing keys {', '.join(missing)}")
    for key in detector.online_state_keys:
        if key == "t":
            detector.t = int(state[key])
            continue
        item = state[key]
        array = np.asarray(item["data"], dtype=item["dtype"]).reshape(item["shape"])
        current = getattr(detector, key)
        if hasattr(current, "detach"):  # pytorch backend: keep the attribute a tensor on its device
            import torch

            array = torch.as_tensor(array, device=current.device)
        setattr(detector, key, array)
