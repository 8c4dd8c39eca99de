"""The demo specs shrunk for the pipeline tests (fewer trials, epochs and rows, a short canary) so the demo
pipeline runs in minutes on two cores: these tests are OF the demo, so they start from its specs."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.spec.model import DEFAULT_SPEC_DIR
from tests.helpers.specs import DEMO_CLASSIFIERS

# 100 customers give ~300 test rows: floors are lowered so sampling noise cannot fail the plumbing tests.
SMALL_DATA_FLOORS = {"evaluation": {"floors": {"roc_auc": 0.6}}}
FAST_OVERRIDES = {
    "conversion-xgboost": {"training": {"search": {"n_trials": 2, "timeout_s": 60}}, **SMALL_DATA_FLOORS},
    "conversion-sklearn": SMALL_DATA_FLOORS,
    "conversion-mlp": {
        "training": {"max_epochs": 6},
        # The demo's expected run time simulates thresholds for about a minute at each fit; the plumbing
        # tests need a detector, not its false-alarm budget.
        "monitoring": {"expected_run_time": 500},
        **SMALL_DATA_FLOORS,
    },
    "intent-transformer": {
        # The demo architecture on the newest 3,000 messages for 5 epochs: ~0.94 macro F1 in ~30 s. With 3
        # it has not yet learned the rare cancellation intent, and the spec's obvious_intents check fails.
        "training": {"hyperparameters": {"max_train_rows": 3000, "max_length": 32}, "max_epochs": 5},
        "evaluation": {"floors": {"accuracy": 0.6}},
    },
}
MIN_TEST_ROWS = 100
# Half the traffic on the canary and a small minimum keep each analysis at the 400-request floor (a few
# seconds); loose latency and shift bounds, since a shared 2-core machine jitters (bad canaries break them).
FAST_CANARY = {
    "traffic_percent": 50,
    "analysis_window_s": 60,
    "min_requests": 60,
    "success": {"max_error_rate": 0.01, "max_p95_latency_ratio": 3.0, "max_prediction_shift": 0.3},
}


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(base.get(key, {}), value) if isinstance(value, dict) and key != "floors" else value
        )
    return merged


def write_spec(spec_dir: Path, name: str, data: dict) -> None:
    data = {**data, "name": name}
    (spec_dir / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def fast_specs(spec_dir: Path) -> None:
    spec_dir.mkdir(parents=True, exist_ok=True)
    for path in (DEFAULT_SPEC_DIR / f"{name}.yaml" for name in DEMO_CLASSIFIERS):
        data = _merge(yaml.safe_load(path.read_text()), FAST_OVERRIDES.get(path.stem, {}))
        data["evaluation"]["min_test_rows"] = MIN_TEST_ROWS
        data["canary"] = FAST_CANARY
        write_spec(spec_dir, path.stem, data)
