"""The training-set contract between `load_features` and every step after it.

A training set is one Parquet file: the entity keys (or the label table's id column), `event_timestamp`
(UTC, the prediction time), the input columns and the label, sorted by event time. Its lineage (feature
service, label dataset, window, rows, content hash, input and entity columns) is embedded in the file's
metadata and checked on every read, so a step never trains or evaluates on rows that changed after they
were recorded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TIME_COLUMN = "event_timestamp"
TIME_DTYPE = "datetime64[ns, UTC]"
LINEAGE_METADATA_KEY = b"mlops.training_set.lineage"


class TrainingSetError(ValueError):
    """A training set file cannot be used; the message is one line naming the file and the problem."""

    def __init__(self, problem: str) -> None:
        super().__init__("training set: " + " ".join(problem.split()))


def content_sha256(frame: pd.DataFrame) -> str:
    """A hash of the column names, dtypes and every value, in row order (stable across runs and files)."""
    digest = hashlib.sha256()
    header = [[str(name), str(dtype)] for name, dtype in frame.dtypes.items()]
    digest.update(json.dumps(header).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def save_training_set(
    frame: pd.DataFrame,
    lineage: dict[str, Any],
    out_path: str | Path,
    lineage_path: str | Path | None = None,
) -> Path:
    """Write the Parquet (lineage embedded in its metadata) and, if `lineage_path` is given, the lineage
    JSON there too (the KFP component's second output)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), LINEAGE_METADATA_KEY: json.dumps(lineage).encode()}
    # Write beside the target and rename, so a crash never leaves a half-written training set.
    partial = out_path.with_name(out_path.name + ".partial")
    pq.write_table(table.replace_schema_metadata(metadata), partial)
    partial.replace(out_path)
    if lineage_path is not None:
        Path(lineage_path).parent.mkdir(parents=True, exist_ok=True)
        Path(lineage_path).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
    return out_path


def load_training_set_file(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a training set written by `save_training_set`; its content must still match its lineage."""
    path = Path(path)
    if not path.is_file():
        raise TrainingSetError(f"not found at {path}")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(LINEAGE_METADATA_KEY)
    if raw is None:
        raise TrainingSetError(f"{path} has no lineage metadata (not written by save_training_set)")
    lineage = json.loads(raw)
    frame = table.to_pandas()
    actual = content_sha256(frame)
    if actual != lineage.get("content_sha256") or len(frame) != lineage.get("rows"):
        raise TrainingSetError(
            f"{path}: content does not match its lineage ({len(frame)} rows, sha256 {actual[:12]}; "
            f"lineage says {lineage.get('rows')} rows, sha256 {str(lineage.get('content_sha256'))[:12]})"
        )
    return frame, lineage
