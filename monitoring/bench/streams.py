"""The rows the monitoring benchmark feeds the detectors: demo data with the demo covariate shift.

Before the shift, sessions are split at random (not by time) into the training frame the detector's
reference is sampled from and a clean pool the request streams draw from, so false alarms measure the
test's own error rate. Rows from the shifted period form the drifted pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SHIFTED_FEATURES = ("sessions_7d", "duration_s")
SHIFT_SIGMA = 0.5
SHIFT_START = pd.Timestamp("2026-10-18", tz="UTC")  # two weeks before the demo data ends: ~3,000 rows
CUSTOMERS = 1000  # ~17,900 unshifted sessions: >= 10,000 clean requests after the training frame
TRAINING_ROWS = 4000
SPLIT_SEED = 0


@dataclass(frozen=True)
class Streams:
    training: pd.DataFrame  # what fit_detector samples the reference from
    clean: pd.DataFrame  # unshifted rows not in `training`
    drifted: pd.DataFrame  # rows stamped at or after the shift

    def clean_stream(self, rows: int, seed: int) -> pd.DataFrame:
        """`rows` clean requests in a seeded random order (cycling through the pool if it is smaller)."""
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(len(self.clean)) for _ in range(rows // len(self.clean) + 1)])
        return self.clean.iloc[order[:rows]].reset_index(drop=True)

    def shifted_stream(self, clean_rows: int, drifted_rows: int, seed: int) -> pd.DataFrame:
        """`clean_rows` clean requests, then `drifted_rows` shifted ones (shift starts after `clean_rows`)."""
        rng = np.random.default_rng(seed + 1_000_003)
        drifted = self.drifted.iloc[rng.permutation(len(self.drifted))[:drifted_rows]]
        return pd.concat([self.clean_stream(clean_rows, seed), drifted], ignore_index=True)


def demo_streams(customers: int = CUSTOMERS, training_rows: int = TRAINING_ROWS) -> Streams:
    from feature_repo.demo_data.config import DriftSpec, GeneratorConfig
    from feature_repo.demo_data.generate import generate
    from feature_repo.demo_data.labels import point_in_time_features

    drift = DriftSpec("covariate", SHIFT_START, SHIFTED_FEATURES, SHIFT_SIGMA)
    tables = generate(GeneratorConfig(customers=customers, drift=(drift,)))
    features = point_in_time_features(
        tables["session_stats"], tables["customer_activity"], tables["customer_profile"]
    )
    labels = tables["conversions"][["session_id", "converted"]]
    frame = features.merge(labels, on="session_id").sort_values("event_timestamp", ignore_index=True)
    before = frame[frame["event_timestamp"] < SHIFT_START]
    shuffled = before.sample(frac=1.0, random_state=SPLIT_SEED)
    return Streams(
        training=shuffled.iloc[:training_rows].reset_index(drop=True),
        clean=shuffled.iloc[training_rows:].reset_index(drop=True),
        drifted=frame[frame["event_timestamp"] >= SHIFT_START].reset_index(drop=True),
    )
