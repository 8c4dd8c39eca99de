"""Custom kinds checked against their projects' published schemas (manifests/schemas/validate.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from core.paths import REPO_ROOT

SCHEMAS = REPO_ROOT / "manifests" / "schemas"
VALIDATOR = SCHEMAS / "validate.mjs"


def validate(objects: list[dict]) -> tuple[int, dict]:
    """Run validate.mjs on the objects: (exit code, parsed report)."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node.js >= 20, then run `make install`")
    if not (SCHEMAS / "node_modules").is_dir():
        pytest.fail("manifests/schemas/node_modules is missing: run `make install`")
    result = subprocess.run(
        ["node", str(VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode in (0, 1), f"validate.mjs failed: {result.stderr.strip()}"
    return result.returncode, json.loads(result.stdout)
