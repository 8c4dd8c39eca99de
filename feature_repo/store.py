"""Apply the feature repository and materialize its online store, skipping work that is already done.

`python -m feature_repo.store bootstrap` is what `make run` calls. `feast apply` runs as a subprocess (the
Feast CLI, exactly as the cluster's apply Job runs it) because Feast imports the definition modules, and
their source paths depend on the environment at import time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core import paths
from core.settings import settings, variable

FEATURE_REPO = Path(__file__).resolve().parent
LOCAL_CONFIG = FEATURE_REPO / "feature_store.yaml"
CLUSTER_CONFIG = FEATURE_REPO / "cluster" / "feature_store.yaml"


class FeatureRepoError(RuntimeError):
    """Applying or materializing the feature repository failed; the message says which step and why."""


def feast_environment() -> dict[str, str]:
    """The `feast` CLI's environment: this process's, with the state folder fixed and the project importable
    (the repository's modules read their data location from `core.settings`)."""
    env = dict(os.environ)
    env[variable("home")] = str(paths.state_root())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def repo_files() -> list[Path]:
    """Every file `feast apply` loads: Feast's own listing (feast 0.67.0, repo_operations.get_repo_files:
    each `*.py` under the repo but `__init__.py` and what `.feastignore` names), plus the config."""
    from feast.repo_operations import get_repo_files

    return [*get_repo_files(FEATURE_REPO), LOCAL_CONFIG]


def definitions_digest() -> str:
    digest = hashlib.sha256()
    for path in repo_files():
        digest.update(str(path.relative_to(FEATURE_REPO.resolve())).encode())
        digest.update(path.read_bytes())
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
    """The FeatureStore of this environment's config: `FEAST_FS_YAML_FILE_PATH` (the cluster config in a
    pipeline step, which requires it), else the local one. Feast is imported lazily (slow to import)."""
    from feast import FeatureStore

    os.environ.setdefault(variable("home"), str(paths.state_root()))
    config = Path(settings().feast_fs_yaml or LOCAL_CONFIG)
    require_config_variables(config)
    return FeatureStore(repo_path=str(FEATURE_REPO), fs_yaml_file=config)


def require_config_variables(config: Path) -> None:
    """Feast expands `${NAME}` in its config with os.path.expandvars, which leaves an unset one in place
    (feast 0.67.0 repo_config.py: a registry URL with a literal `${FEAST_REGISTRY_HOST}` fails much later,
    far from its cause); here an unset one is named with where it comes from."""
    from core.runtime_config import injections

    if not config.is_file():
        raise FeatureRepoError(f"feature_store.yaml not found at {config} ({variable('feast_fs_yaml')})")
    origins = {injection.variable: injection.origin() for injection in injections()}
    names = dict.fromkeys(re.findall(r"\$\{(\w+)\}", config.read_text()))
    missing = [name for name in names if name not in os.environ]
    if missing:
        where = "; ".join(f"{name} ({origins.get(name, 'not a platform setting')})" for name in missing)
        raise FeatureRepoError(f"{config} needs unset environment variables: {where}")


def _source_path(view) -> str:
    return view.batch_source.path


def _source_range(view) -> tuple[datetime, datetime]:
    """The first and last event time in a view's Parquet source (the end one second on: Feast's window
    must reach the newest row)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    stamps = pq.read_table(_source_path(view), columns=[view.batch_source.timestamp_field]).column(0)
    bounds = pc.min_max(stamps)
    return bounds["min"].as_py(), bounds["max"].as_py() + timedelta(seconds=1)


def _stat(path: str) -> str:
    if "://" in path:
        return path
    stat = Path(path).stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


CHECK_BATCH_ROWS = 50_000


def missing_online(store, view) -> tuple[int, int]:
    """(entities of the view's source without an online value, all of them): what materializing left out."""
    import pyarrow.parquet as pq

    keys = [column.name for column in view.entity_columns]
    rows = pq.read_table(_source_path(view), columns=keys).to_pandas().drop_duplicates()
    feature = f"{view.name}:{view.features[0].name}"
    records = rows.to_dict("records")
    missing = 0
    # in slices: the SQLite online store reads all keys of one call in one query, one SQL variable each,
    # and 2 million sessions (make bench-scale at 100x) passed SQLite's limit of 250,000
    for start in range(0, len(records), CHECK_BATCH_ROWS):
        batch = records[start : start + CHECK_BATCH_ROWS]
        online = store.get_online_features(features=[feature], entity_rows=batch).to_dict()
        missing += sum(value is None for value in online[view.features[0].name])
    return missing, len(rows)


def materialize(force: bool = False, views: Sequence[str] | None = None) -> list[tuple] | None:
    """Load the latest value of every online feature view (or only `views`, by name) into the online store,
    each over its own source's time range; a view whose source file is absent is skipped with a warning,
    and so is every view's count of source entities left without an online value.

    Returns (view, start, end) per materialized view; None when this exact data (by each source file's
    size and modification time) was materialized after the last apply.
    """
    store = open_store()
    chosen = [v for v in store.list_feature_views() if v.online and (not views or v.name in views)]
    present = []
    for view in chosen:
        path = _source_path(view)
        if "://" not in path and not Path(path).is_file():
            print(f"warning: feast materialize: {view.name}: no source at {path}, skipped", file=sys.stderr)
        else:
            present.append(view)
    key = (paths.feast_dir() / "applied.sha256").read_text()
    key += ";".join(sorted(f"{view.name}={_stat(_source_path(view))}" for view in present))
    stamp = paths.feast_dir() / "materialized.sha256"
    if not force and stamp.exists() and stamp.read_text() == key:
        return None
    done = []
    with warnings.catch_warnings():
        # ibis (under Feast's DuckDB store) calls a DuckDB method DuckDB has deprecated; not ours to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
        for view in present:
            if "://" in _source_path(view):  # a remote source: up to now, from where the last run stopped
                store.materialize_incremental(end_date=datetime.now(UTC), feature_views=[view.name])
                done.append((view.name, None, None))
                continue
            start, end = _source_range(view)
            store.materialize(start_date=start, end_date=end, feature_views=[view.name])
            done.append((view.name, start, end))
    stamp.write_text(key)
    for view in present:
        missing, total = missing_online(store, view)
        if missing:
            print(
                f"warning: feast materialize: {view.name}: {missing} of {total} entities of "
                f"{_source_path(view)} have no online value",
                file=sys.stderr,
            )
    return done


def bootstrap(force: bool = False, views: Sequence[str] | None = None) -> None:
    """Apply, then materialize every online view (or only `views`: tests of the demo name the demo's)."""
    applied = apply(force=force)
    print(f"feast apply: {'applied' if applied else 'definitions unchanged, skipped'} ({FEATURE_REPO.name}/)")
    done = materialize(force=force or applied, views=views)
    if done is None:
        print("feast materialize: online store already holds this data, skipped")
        return
    for view, start, end in done:
        span = "incrementally to now" if start is None else f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}"
        print(f"feast materialize: {view} {span} -> {paths.feast_dir()}")


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
