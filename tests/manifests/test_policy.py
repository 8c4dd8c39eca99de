"""checkov's Kubernetes policies over every rendered overlay. checkov runs from the tools environment
(.venv-tools, tools.lock: its pins clash with the platform's); missing it fails, never skips."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from manifests.validate import render

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod", "dev-standard")
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"


def skips() -> list[dict]:
    return yaml.safe_load((ROOT / "manifests" / "checkov-skips.yaml").read_text())


def test_every_skip_names_a_check_and_a_reason():
    entries = skips()
    assert entries and all(e["id"].startswith("CKV") and len(e["reason"]) > 20 for e in entries)
    assert len({e["id"] for e in entries}) == len(entries)


def failed_checks(rendered_dir: Path) -> list[str]:
    skip_ids = ",".join(e["id"] for e in skips())
    command = [str(CHECKOV), "-d", str(rendered_dir), "--framework", "kubernetes"]
    command += ["--skip-check", skip_ids, "--output", "json", "--quiet", "--compact"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):
        pytest.fail(f"checkov failed to run: {result.stderr.strip()[-2000:]}")
    reports = json.loads(result.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed]


@pytest.mark.parametrize("env", ENVS)
def test_rendered_overlay_passes_checkov(env, tmp_path):
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (it syncs .venv-tools from tools.lock)")
    objects = render(ROOT / "kustomize" / "overlays" / env)
    (tmp_path / f"{env}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    assert failed_checks(tmp_path) == []
