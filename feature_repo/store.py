"""Apply the feature repository and materialize its online store, skipping work that is already done.

`python -m feature_repo.store bootstrap` is what `make run` calls. `feast apply` runs as a subprocess (the
Feast CLI, exactly as the cluster's apply Job runs it) because Feast imports the definition modules, and
their source paths depend on the environment at import time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from core import paths
from core.settings import settings, variable

FEATURE_REPO = Path(__file__).resolve().parent
LOCAL_CONFIG = FEATURE_REPO / "feature_store.yaml"
CLUSTER_CONFIG = FEATURE_REPO / "cluster" / "feature_store.yaml"
_DEFINITION_FILES = (
    "entities.py",
    "data_sources.py",
    "feature_views.py",
    "on_demand.py",
    "feature_services.py",
    "feature_store.yaml",
)


class FeatureRepoError(RuntimeError):
    """Applying or materializing the feature repository failed; the message says which step and why."""


def feast_environment() -> dict[str, str]:
    """The `feast` CLI's environment: this process's, with the state folder fixed and the project importable
    (the repository's modules read their data location from `core.settings`)."""
    env = dict(os.environ)
    env[variable("home")] = str(paths.state_root())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def definitions_digest() -> str:
    digest = hashlib.sha256()
    for name in _DEFINITION_FILES:
        digest.update(name.encode())
        digest.update((FEATURE_REPO / name).read_bytes())
    digest.update(str(settings().feature_data_uri or paths.feature_data_dir()).encode())
    return digest.hexdigest()


def apply(force: bool = False) -> bool:
    """Run `feast apply` when the definitions changed since the last apply. Returns whether it ran."""
    stamp = paths.feast_dir() / "applied.sha256"
    digest = definitions_digest()
    registry = paths.feast_dir() / "registry.db"
    if not force and registry.exists() and stamp.exists() and stamp.read_text() == digest:
        return False
    paths.feast_dir().mkdir(parents=True, exist_ok=True)
    feast_cli = Path(sys.executable).parent / "feast"
    result = subprocess.run(
        [str(feast_cli), "--chdir", str(FEATURE_REPO), "apply"],
        env=feast_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise FeatureRepoError(f"feast apply failed in {FEATURE_REPO}: {last[0]}")
    stamp.write_text(digest)
    return True


def open_store():
    """The local FeatureStore (imported lazily: Feast is slow to import)."""
    from feast import FeatureStore

    os.environ.setdefault(variable("home"), str(paths.state_root()))
    return FeatureStore(repo_path=str(FEATURE_REPO), fs_yaml_file=LOCAL_CONFIG)


def _data_manifest() -> dict:
    manifest = paths.feature_data_dir() / "manifest.json"
    if not manifest.exists():
        raise FeatureRepoError(
            f"no demo data in {manifest.parent}: run `python -m feature_repo.demo_data` first"
        )
    return json.loads(manifest.read_text())


def materialize(force: bool = False, views: Sequence[str] | None = None) -> tuple[datetime, datetime] | None:
    """Load the latest value of every online feature view (or only `views`, by name) into the online store
    for the data's time range.

    Skipped when this exact data (by the manifest's hashes) was materialized after the last apply.
    """
    manifest = _data_manifest()
    start, end = datetime.fromisoformat(manifest["start"]), datetime.fromisoformat(manifest["end"])
    key = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    key += (paths.feast_dir() / "applied.sha256").read_text() + ",".join(sorted(views or ()))
    stamp = paths.feast_dir() / "materialized.sha256"
    if not force and stamp.exists() and stamp.read_text() == key:
        return None
    with warnings.catch_warnings():
        # ibis (under Feast's DuckDB store) calls a DuckDB method DuckDB has deprecated; not ours to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
        open_store().materialize(start_date=start, end_date=end, feature_views=list(views) if views else None)
    stamp.write_text(key)
    return start, end


def bootstrap(force: bool = False, views: Sequence[str] | None = None) -> None:
    """Apply, then materialize every online view (or only `views`: tests of the demo name the demo's)."""
    applied = apply(force=force)
    print(f"feast apply: {'applied' if applied else 'definitions unchanged, skipped'} ({FEATURE_REPO.name}/)")
    window = materialize(force=force or applied, views=views)
    if window is None:
        print("feast materialize: online store already holds this data, skipped")
    else:
        print(f"feast materialize: {window[0]:%Y-%m-%d} .. {window[1]:%Y-%m-%d} -> {paths.feast_dir()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feature_repo.store", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["bootstrap", "apply", "materialize"])
    parser.add_argument("--force", action="store_true", help="redo the step even if nothing changed")
    args = parser.parse_args(argv)
    try:
        if args.command == "bootstrap":
            bootstrap(force=args.force)
        elif args.command == "apply":
            apply(force=True)
        else:
            materialize(force=True)
    except FeatureRepoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
