"""The export step: write the version's Triton repository (inference/triton_repository.py), report parity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.spec.model import load_specs
from core.timing import timed_step
from inference.triton_repository import export_repository


def run(model: str, bundle_dir: str, test_path: str, repository_dir: str) -> dict:
    with timed_step("export_triton", model):
        (spec,) = load_specs(names=[model])
        result = export_repository(
            Path(bundle_dir), spec, Path(repository_dir), test_frame=pd.read_parquet(test_path)
        )
        print(
            f"exported {spec.name} ({result.artifact}): parity max |diff| {result.parity_max_abs_diff:.2e} "
            f"on {result.parity_rows} rows (tolerance {result.tolerance:g})",
            flush=True,
        )
        return result.to_json()
