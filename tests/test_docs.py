"""The README is a short front door whose links lead somewhere, and the own-model guide shows the files
that tests/test_added_model.py runs (not a copy that drifts from them)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.own_model import OWN_MODEL, OWN_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_front_door_is_short_and_every_page_it_names_exists():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    named = set(re.findall(r"\]\((docs/[a-z-]+\.md)[)#]", readme))
    assert "docs/own-model.md" in named and "docs/cluster.md" in named
    assert {page for page in named if not (ROOT / page).is_file()} == set()
    # every reference page is reachable from the front door
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} == named


def test_every_image_the_docs_show_is_in_the_repository():
    for page in (ROOT / "README.md", *(ROOT / "docs").glob("*.md")):
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text())
        missing = [image for image in images if not (page.parent / image).is_file()]
        assert not missing, f"{page.name}: {missing}"
    assert "docs/bench/serving.png" in (ROOT / "README.md").read_text()  # make bench's charts, shown


def test_the_guide_shows_the_tested_files_verbatim():
    guide = (ROOT / "docs" / "own-model.md").read_text()
    (view,) = _fenced(guide, "python")
    (spec,) = _fenced(guide, "yaml")
    assert view in (OWN_MODEL_DIR / "patients.py").read_text()
    assert spec in (OWN_MODEL_DIR / f"{OWN_MODEL}.yaml").read_text()
    assert view.startswith("from datetime import timedelta") and spec.startswith(f"name: {OWN_MODEL}")
