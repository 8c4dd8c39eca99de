"""A user's model, unlike the demo's: one entity key, numeric features only, a separate label table, and
timestamps newer than the demo data's. Its two files are tests/fixtures/own_model/ (the ones
docs/own-model.md shows); its tables come from a seeded generator here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

OWN_MODEL_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "own_model"
OWN_MODEL = "patient-risk"
OWN_VIEW = "patient_measurements_fv"
OWN_SERVICE = "patient_risk_v1"
FEATURES = [f"m{i:02d}" for i in range(8)]
FIRST_VISIT = pd.Timestamp("2027-01-04", tz="UTC")


def add_own_model(spec_dir: Path, feature_repo: Path) -> None:
    """The user's two new files: the spec into a spec folder, the view module into a feature repo."""
    shutil.copy(OWN_MODEL_DIR / f"{OWN_MODEL}.yaml", spec_dir / f"{OWN_MODEL}.yaml")
    shutil.copy(OWN_MODEL_DIR / "patients.py", feature_repo / "patients.py")


def write_own_tables(data_dir: Path, rows: int = 569, seed: int = 0) -> pd.DataFrame:
    """`patients.parquet` (features, stamped at each visit) and `diagnoses.parquet` (the label, an hour
    later) for `rows` patients over about 60 days; returns the feature table."""
    rng = np.random.default_rng(seed)
    # Millisecond stamps: Feast's DuckDB join casts to microseconds and refuses to drop nanoseconds.
    visits = (FIRST_VISIT + pd.to_timedelta(np.sort(rng.uniform(0, 60 * 24, rows)), unit="h")).floor("ms")
    features = rng.normal(size=(rows, len(FEATURES)))
    logit = 1.5 * features[:, 0] - 1.0 * features[:, 1] + 0.5 * features[:, 2]
    diagnosed = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    ids = np.arange(1, rows + 1, dtype="int64")
    patients = pd.DataFrame(features, columns=FEATURES).assign(
        patient_id=ids, event_timestamp=visits, created=visits
    )
    labels = pd.DataFrame(
        {"patient_id": ids, "event_timestamp": visits + pd.Timedelta(hours=1), "diagnosed": diagnosed}
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    patients.to_parquet(data_dir / "patients.parquet", index=False)
    labels.to_parquet(data_dir / "diagnoses.parquet", index=False)
    return patients
