"""The load_features step as the pipeline runs it."""

from __future__ import annotations

from pathlib import Path

from components.load_features.core import load_training_set, resolve_window
from core.spec.model import load_specs
from core.timing import timed_step
from core.training_set import save_training_set


def run(model: str, start: str, end: str, out_path: str) -> dict:
    with timed_step("load_features", model):
        (spec,) = load_specs(names=[model])
        window = resolve_window(spec, start or None, end or None)
        frame, lineage = load_training_set(spec, *window)
        save_training_set(frame, lineage, Path(out_path))
        source = lineage["feature_service"] or "request fields"
        span = f"{window[0]:%Y-%m-%d} .. {window[1]:%Y-%m-%d}"
        print(f"training set for {spec.name}: {lineage['rows']} rows, {span}, from {source}", flush=True)
        return lineage
