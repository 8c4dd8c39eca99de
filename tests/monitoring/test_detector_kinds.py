"""The detector kind registry: exactly the spec's kinds, each to a class of the right family, imported only
when its kind is used. No alibi-detect needed: the registry and the classes import without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from core.spec.monitoring import BATCH_DETECTORS, ONLINE_DETECTORS, Detector
from monitoring.detectors.base import FORMAT_VERSION, MANIFEST, DetectorError
from monitoring.detectors.kinds import KIND_CLASSES, detector_class, load_detector

REPO_ROOT = Path(__file__).resolve().parents[2]
IMPLEMENTATIONS = ("monitoring.detectors.tabular", "monitoring.detectors.online", "monitoring.detectors.text")


def test_the_registry_covers_exactly_the_spec_kinds():
    assert set(KIND_CLASSES) == set(get_args(Detector)) == BATCH_DETECTORS | ONLINE_DETECTORS


@pytest.mark.parametrize("kind", sorted(KIND_CLASSES))
def test_each_kind_maps_to_a_class_that_fits_and_loads_in_its_family(kind):
    cls = detector_class(kind, "test")
    assert callable(cls.fit_spec) and callable(cls.from_bundle)
    assert cls.online == (kind in ONLINE_DETECTORS)


@pytest.mark.parametrize(
    ("kind", "imported"),
    [
        ("ks", {"monitoring.detectors.tabular"}),
        ("fet_online", {"monitoring.detectors.online", "monitoring.detectors.tabular"}),  # built on tabular
        ("lsdd_online", {"monitoring.detectors.text"}),
    ],
)
def test_using_a_kind_imports_only_its_own_implementation(kind, imported):
    script = (
        "import sys\n"
        "from monitoring.detectors.kinds import detector_class\n"
        f"detector_class({kind!r}, 'test')\n"
        f"print(sorted(m for m in {IMPLEMENTATIONS!r} if m in sys.modules))\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(json.loads(done.stdout.strip().replace("'", '"'))) == imported


def test_a_bundle_of_an_unknown_kind_is_a_one_line_error_naming_its_manifest(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "kind": "nope"}))
    with pytest.raises(DetectorError, match=r"detector\.json: unknown detector kind 'nope'") as raised:
        load_detector(tmp_path)
    assert str(tmp_path) in str(raised.value) and "\n" not in str(raised.value)
