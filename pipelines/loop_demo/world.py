"""What the closed-loop demo (pipelines/loop_demo/run.py) changes in the world: the demo data drifts from a
recent date on (Feast follows), and the traffic that reaches the champion shifts the same way. Both use
feature_repo.demo_data's covariate drift, so the retraining run trains on the kind of data the detector
flagged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core import paths
from pipelines.loop_demo.probes import LoopDemoError


class Traffic:
    """One-row OIP requests for the champion through the router, counted (normal or shifted rows)."""

    def __init__(
        self, router_url: str, route: Any, encoder: Any, normal: pd.DataFrame, shifted: pd.DataFrame
    ):
        self.router_url, self.route, self.encoder = router_url, route, encoder
        self.rows = {"normal": normal, "shifted": shifted}
        self.kind, self.sent, self.failed, self._seed = "normal", 0, 0, 0

    def send(self, requests: int) -> None:
        from inference.canary.traffic import send_traffic

        self._seed += 1
        done = send_traffic(
            self.router_url, self.route, self.encoder, self.rows[self.kind], requests, self._seed
        )
        self.sent, self.failed = self.sent + done.sent, self.failed + done.failed


def drift_demo_data(features: tuple[str, ...], magnitude: float, recent_fraction: float) -> datetime:
    """`$MLOPS_HOME/data` again with its own parameters plus the shift over its newest `recent_fraction`
    (older rows stay bit for bit the same: drift makes no random draws), then Feast apply + materialize."""
    from feature_repo import store
    from feature_repo.demo_data.config import DriftSpec, GeneratorConfig, as_utc
    from feature_repo.demo_data.generate import generate
    from feature_repo.demo_data.writer import read_manifest, write_tables

    data_dir = paths.feature_data_dir()
    manifest = read_manifest(data_dir)
    if manifest is None:
        raise LoopDemoError(f"loop demo: no demo data in {data_dir}: run `make data features` first")
    base = manifest["parameters"]
    start, end = as_utc(base["start"]), as_utc(base["end"])
    drift_start = end - (end - start) * recent_fraction
    spec = DriftSpec("covariate", drift_start, features, magnitude)
    config = GeneratorConfig(
        seed=base["seed"], customers=base["customers"], start=start, end=end, drift=(spec,)
    )
    write_tables(config, generate(config), data_dir)
    store.bootstrap()
    return drift_start


def shifted_rows(
    rows: pd.DataFrame, features: Sequence[str], magnitude: float, demo: bool = True
) -> pd.DataFrame:
    """`rows` shifted by `magnitude` of each feature's own spread: with `demo`, the demo data's covariate
    drift (the generator's, so the retraining run's regenerated data holds the same shift); otherwise, for
    any model's numeric columns, the column plus `magnitude` standard deviations."""
    missing = [f for f in features if f not in rows.columns]
    if missing:
        raise LoopDemoError(f"loop demo: the champion's rows have no column {', '.join(missing)} to shift")
    if not demo:
        return _shifted_numeric(rows, features, magnitude)
    from feature_repo.demo_data.config import DriftSpec
    from feature_repo.demo_data.drift import TABLE_OF, apply_covariate_drift

    stamped = rows.assign(event_timestamp=pd.Timestamp(0, tz="UTC"))  # every row is after the start
    spec = DriftSpec("covariate", datetime(1970, 1, 1, tzinfo=UTC), tuple(features), magnitude)
    tables = apply_covariate_drift({TABLE_OF[f]: stamped for f in features}, [spec])
    drifted = rows.copy()
    for feature in features:
        drifted[feature] = tables[TABLE_OF[feature]][feature].to_numpy()
    return drifted


def _shifted_numeric(rows: pd.DataFrame, features: Sequence[str], magnitude: float) -> pd.DataFrame:
    not_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(rows[f])]
    if not_numeric:
        raise LoopDemoError(f"loop demo: --drift-features {', '.join(not_numeric)}: not numeric columns")
    drifted = rows.copy()
    for feature in features:
        spread = float(rows[feature].std()) or 1.0  # a constant column still moves
        drifted[feature] = rows[feature] + magnitude * spread
    return drifted
