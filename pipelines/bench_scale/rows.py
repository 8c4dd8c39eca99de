"""How many rows each step handled, read from what the run wrote (never estimated): the demo data's
manifest for the data and Feast stages, the pipeline log's own lines for the steps, and the spec's
declared row cap for a trainer that fits a newest-rows subset (intent-transformer's max_train_rows).
Also the failures the pipeline log reports, so a failed or killed step shows with its error line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# The tables Feast materializes (feature_repo/data_sources.py); conversions and messages are label tables.
FEATURE_TABLES = ("customer_profile", "customer_activity", "session_stats")

# The steps' own log lines (components/load_features/step.py, components/train/step.py).
_TRAINING_SET = re.compile(r"training set for ([a-z0-9-]+): (\d+) rows")
_SPLITS = re.compile(
    r"\[train ([a-z0-9-]+)\] [a-z0-9-]+: train (\d+) rows, valid (\d+) rows, test (\d+) rows"
)
_FAILED_TASK = re.compile(r"Task '([a-z0-9-]+)' finished with status FAILURE")
_ERROR = re.compile(r"^\s*(?:[a-z_.]+\.)?([A-Za-z]*(?:Error|Exception|Killed)\b.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# An absolute path in an error line, shortened to its last three parts (model/version/file names the model).
_LONG_PATH = re.compile(r"/(?:[^\s/]+/)+(?=[^\s/]+/[^\s/]+/[^\s/]+)")

# Which input each step reads. fit_detector reads the whole training set (its reference is a sample of it);
# evaluate, gate (behaviour tests) and export_triton (parity on every test row) read the test split.
STEP_INPUT = {
    "load_features": "training_set",
    "validate_data": "training_set",
    "train": "fit",
    "fit_detector": "training_set",
    "evaluate": "test",
    "gate": "test",
    "export_triton": "test",
}


@dataclass
class ModelRows:
    training_set: int | None = None
    train: int | None = None
    valid: int | None = None
    test: int | None = None
    fit_cap: int | None = None

    def fit(self) -> int | None:
        """Rows the trainer fits on: the train split, or its newest `fit_cap` rows."""
        if self.train is None:
            return None
        return min(self.train, self.fit_cap) if self.fit_cap else self.train

    def for_step(self, step: str) -> int | None:
        source = STEP_INPUT.get(step)
        if source is None:
            return None
        return self.fit() if source == "fit" else getattr(self, source)


@dataclass
class PipelineLog:
    rows: dict[str, ModelRows] = field(default_factory=dict)
    failed_tasks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_pipeline_log(text: str) -> PipelineLog:
    parsed = PipelineLog()
    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        if match := _TRAINING_SET.search(line):
            parsed.rows.setdefault(match[1], ModelRows()).training_set = int(match[2])
        elif match := _SPLITS.search(line):
            rows = parsed.rows.setdefault(match[1], ModelRows())
            rows.train, rows.valid, rows.test = int(match[2]), int(match[3]), int(match[4])
        elif match := _FAILED_TASK.search(line):
            if match[1] not in parsed.failed_tasks:
                parsed.failed_tasks.append(match[1])
        elif match := _ERROR.match(line):
            parsed.errors.append(_LONG_PATH.sub(".../", match[1].strip())[:300])
    return parsed


def fit_caps(models: list[str]) -> dict[str, int]:
    """Each model's declared cap on the rows its trainer fits (`training.hyperparameters.max_train_rows`)."""
    from core.spec.model import load_specs

    caps = {}
    for spec in load_specs(names=models):
        cap = (spec.training.hyperparameters or {}).get("max_train_rows")
        if cap:
            caps[spec.name] = int(cap)
    return caps


def data_rows(data_dir: Path) -> tuple[int | None, int | None]:
    """(rows the generator wrote, rows of the tables Feast materializes), from the data manifest."""
    manifest = data_dir / "manifest.json"
    if not manifest.is_file():
        return None, None
    tables = json.loads(manifest.read_text()).get("tables", {})
    written = sum(int(table["rows"]) for table in tables.values())
    features = sum(int(tables[name]["rows"]) for name in FEATURE_TABLES if name in tables)
    return written, features


def newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None
