"""Start one run of the deployed training pipeline on a KFP API server and print its run id.

    python -m pipelines.submit --host URL [--models a,b] [--reason TEXT]
        [--package pipelines/compiled/training-pipeline.yaml] [--upload-package] [--experiment retraining]

The weekly CronJob (manifests/retraining-schedule) runs this; so can a person. The run is created against
the deployed Pipeline and the PipelineVersion named after --package's hash (monitoring/retrain_trigger/
deployed.py): what Argo CD synced is what runs. --upload-package uploads the package with the run
instead (a KFP without the Kubernetes objects). Every step is compiled with caching off: a run must
recompute. Without --models the pipeline's own default (every model) applies. Exit codes: 0 submitted,
1 the KFP API refused the run (or has no such version), 2 bad flags, missing package or unreachable host.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import SpecError
from core.spec.model import load_specs
from monitoring.retrain_trigger.deployed import DeployedPipeline, run_deployed
from monitoring.retrain_trigger.submitters import DEFAULT_PIPELINE_PACKAGE, kfp_client, one_line

DEFAULT_EXPERIMENT = "retraining"
DEFAULT_REASON = "schedule"


class UsageError(Exception):
    """A flag, file or host the user gave is unusable; exit 2."""


def run_name(now: datetime | None = None) -> str:
    """`scheduled-<UTC timestamp>`: sortable, and unique per second (the CronJob forbids overlaps)."""
    return f"scheduled-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}"


def run_arguments(reason: str, models: Sequence[str] | None) -> dict[str, Any]:
    # `models` is left out when not given so the compiled default (every spec) stays the one source.
    return {"reason": reason, **({"models": list(models)} if models else {})}


def parse_models(text: str | None) -> list[str] | None:
    """The comma-separated names, each checked against the model specs; None when not given."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--models: no model names given")
    try:
        load_specs(names=names)
    except SpecError as exc:
        raise UsageError(f"--models: {exc}") from exc
    return names


def connect(host: str) -> Any:
    # kfp.Client() asks the API server's healthz at once, so an unreachable host fails here. Its warning
    # that it needs KFP >= 2.0.0-beta.2 is noise for us (we target 2.x) and would break one-line errors.
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This client only works", FutureWarning)
            return kfp_client(host)
    except Exception as exc:
        raise UsageError(f"--host {host}: KFP API unreachable: {one_line(exc)}") from exc


def submit(
    host: str,
    package: Path,
    reason: str,
    models: Sequence[str] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    upload_package: bool = False,
) -> str:
    """Create the run on the KFP API at `host`; returns its run id. Raises UsageError or RuntimeError."""
    if not package.is_file():
        raise UsageError(f"--package {package}: not found (run `make compile`)")
    client = connect(host)
    name, arguments = run_name(), run_arguments(reason, models)
    try:
        # kfp prints run links to stdout; stdout carries only the run id, so scripts can read it.
        with redirect_stdout(sys.stderr):
            if not upload_package:
                return run_deployed(client, DeployedPipeline.of_package(package), name, arguments, experiment)
            result = client.create_run_from_pipeline_package(
                str(package), arguments=arguments, run_name=name, experiment_name=experiment
            )
    except Exception as exc:
        raise RuntimeError(f"KFP at {host}: cannot create run {name}: {one_line(exc)}") from exc
    return str(result.run_id)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.submit", description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="KFP API server URL")
    parser.add_argument("--models", help="comma-separated model spec names (default: all)")
    parser.add_argument("--reason", default=DEFAULT_REASON, help="why this run (logged with it)")
    parser.add_argument(
        "--package", type=Path, default=DEFAULT_PIPELINE_PACKAGE, help="its hash names the version that runs"
    )
    parser.add_argument(
        "--upload-package",
        action="store_true",
        help="fallback: upload the package instead of the deployed version",
    )
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)  # argparse exits 2 itself on unknown or missing flags
    try:
        models = parse_models(args.models)
        run_id = submit(args.host, args.package, args.reason, models, args.experiment, args.upload_package)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
