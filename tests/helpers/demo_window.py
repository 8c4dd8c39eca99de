"""The demo data's whole period (from its manifest), for tests of the demo that pin the training window
instead of taking each spec's."""

from __future__ import annotations

from core import paths
from feature_repo.demo_data.writer import read_manifest


def demo_data_window() -> tuple[str, str]:
    """`(start, end)` of the generated demo data, or empty strings (each spec's window) without it."""
    manifest = read_manifest(paths.feature_data_dir())
    return (manifest["start"], manifest["end"]) if manifest else ("", "")
