"""Download the drift detectors of a model's aliased versions from MLflow for the drift service.

`python -m monitoring.detectors.pull --model NAME [--model NAME ...] --alias champion --alias challenger
--out DIR` writes each version's `detector/` run artifact to `DIR/<model>/<version>/` (the layout
`python -m monitoring.drift_service --detectors DIR` scans). The tracking server comes from
`--tracking-uri`, else `MLFLOW_TRACKING_URI` (the cluster sets it), else the local store under
`$MLOPS_HOME` (what `make pipeline` registered into). It runs in the platform image (an initContainer of
the drift detector), because the serving image has no MLflow client.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DETECTOR_ARTIFACT = "detector"  # the run artifact components/register/step.py logs
DETECTOR_FILE = "detector.json"

log = logging.getLogger(__name__)


class PullError(RuntimeError):
    """A detector could not be pulled; the message names the model, version and what is wrong."""


@dataclass(frozen=True)
class PulledDetector:
    model: str
    version: str
    aliases: tuple[str, ...]
    folder: Path


def aliased_versions(client, model: str, aliases: Sequence[str]) -> dict[str, list[str]]:
    """version -> the aliases that point at it; aliases that are not set (or a model that does not
    exist) are skipped: a model often has no challenger."""
    from mlflow.exceptions import MlflowException

    versions: dict[str, list[str]] = {}
    for alias in aliases:
        try:
            version = client.get_model_version_by_alias(model, alias)
        except MlflowException:
            log.warning("%s@%s: alias not set, skipped", model, alias)
            continue
        versions.setdefault(str(version.version), []).append(alias)
    return versions


def pull_version(client, model: str, version: str, out: Path) -> Path:
    """Replace `out/<model>/<version>/` with the version's detector artifact, atomically per version so
    the drift service never sees half a detector (the folder survives container restarts)."""
    import mlflow

    run_id = client.get_model_version(model, version).run_id
    target = out / model / version
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{version}-") as scratch:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=DETECTOR_ARTIFACT,
                dst_path=scratch,
                tracking_uri=client.tracking_uri,
            )
        except Exception as exc:  # MLflow raises several types for a missing artifact or server
            raise PullError(
                f"{model} version {version}: cannot download {DETECTOR_ARTIFACT}/: {exc}"
            ) from exc
        if not (Path(local) / DETECTOR_FILE).is_file():
            raise PullError(
                f"{model} version {version}: run {run_id} has no {DETECTOR_ARTIFACT}/{DETECTOR_FILE}"
            )
        shutil.rmtree(target, ignore_errors=True)
        Path(local).rename(target)
    return target


def pull(
    models: Sequence[str], aliases: Sequence[str], out: Path, tracking_uri: str | None = None
) -> list[PulledDetector]:
    """Pull every (model, alias) detector into `out`; each version once even if two aliases share it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    pulled = []
    for model in models:
        for version, version_aliases in aliased_versions(client, model, aliases).items():
            folder = pull_version(client, model, version, out)
            pulled.append(PulledDetector(model, version, tuple(version_aliases), folder))
            log.info("%s version %s (%s) -> %s", model, version, ", ".join(version_aliases), folder)
    return pulled


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="registered model (repeat)")
    parser.add_argument("--alias", action="append", required=True, help="alias to pull (repeat)")
    parser.add_argument("--out", type=Path, required=True, help="folder the drift service reads")
    parser.add_argument(
        "--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI, else the local store"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from core.registry import configure_tracking

    try:
        pulled = pull(args.model, args.alias, args.out, configure_tracking(args.tracking_uri))
    except PullError as exc:
        print(f"detectors pull: {exc}", file=sys.stderr)
        return 1
    if not pulled:
        # The drift service refuses to start on an empty folder; say why here, where the cause is.
        print(
            f"detectors pull: no version of {', '.join(args.model)} has alias {', '.join(args.alias)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
