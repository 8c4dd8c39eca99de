"""The fit_detector step as the pipeline runs it: the spec's drift detector, fitted on the training set.

Where it runs. alibi-detect needs numpy<2, so it lives only in the serving environment (the
SERVING_IMAGE on the cluster, `.venv-serving` locally). On the cluster this step runs in that image and
fits in-process. `kfp.local` runs every component in the platform environment, which has no
alibi-detect: there the step runs `python -m monitoring.detectors.fit` with the serving interpreter
(`$MLOPS_SERVING_PYTHON`, else `<repo>/.venv-serving/bin/python`) as a subprocess.

Which version. The registry version exists only once register has run, after this step, so the bundle
is written with the placeholder version "candidate". Register copies the bundle with `stamp_version`,
which writes the registered version into `detector.json`, and logs the copy as the run's `detector/`
artifact. A drift service that loads a bundle still marked "candidate" must take the version from where
it found the bundle (its folder name or the registry), e.g. `detector.version = folder.name`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.paths import REPO_ROOT
from core.settings import settings, variable
from core.spec.model import spec_directory
from core.timing import timed_step
from monitoring.detectors.base import MANIFEST, read_manifest

STEP = "fit_detector"
CANDIDATE_VERSION = "candidate"
FIT_TIMEOUT_S = 1800  # online detectors simulate thresholds: minutes on large references, never hours


class FitDetectorError(RuntimeError):
    """The detector could not be fitted; the message names the model and the cause in one line."""


def run(model: str, training_set_path: str, detector_dir: str) -> dict[str, Any]:
    """Fit `model`'s detector on the training set and write its bundle to `detector_dir`."""
    with timed_step(STEP, model):
        if alibi_available():
            _log(model, "fitting in-process (alibi-detect importable here)")
            fit_in_process(model, Path(training_set_path), Path(detector_dir))
            where = "in-process"
        else:
            python = serving_python()
            _log(model, f"fitting with the serving interpreter {python}")
            fit_in_serving_env(python, model, Path(training_set_path), Path(detector_dir))
            where = "serving-env"
        manifest = read_manifest(Path(detector_dir))
        _log(
            model,
            f"{manifest['kind']} detector on {len(manifest['features'])} features, "
            f"{manifest.get('reference_rows', '?')} reference rows",
        )
        return summarize(manifest, where)


def alibi_available() -> bool:
    return importlib.util.find_spec("alibi_detect") is not None


def serving_python() -> Path:
    """The numpy<2 interpreter that has alibi-detect: `$MLOPS_SERVING_PYTHON`, else the repo's venv."""
    return settings().serving_python or REPO_ROOT / ".venv-serving" / "bin" / "python"


def fit_in_process(model: str, training_set: Path, detector_dir: Path) -> Path:
    from core.spec.model import load_specs
    from monitoring.detectors.base import read_table
    from monitoring.detectors.fit import fit_detector

    (spec,) = load_specs(spec_directory(), names=[model])
    return fit_detector(spec, read_table(training_set), CANDIDATE_VERSION, detector_dir)


def fit_in_serving_env(python: Path, model: str, training_set: Path, detector_dir: Path) -> Path:
    if not python.is_file():
        raise FitDetectorError(
            f"{STEP} {model}: serving interpreter {python} not found "
            f"(run `make install` or set {variable('serving_python')})"
        )
    arguments = fit_arguments(model, training_set, detector_dir)
    command = [str(python), "-m", "monitoring.detectors.fit", *arguments]
    try:
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=_serving_environment(),
            capture_output=True,
            text=True,
            timeout=FIT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise FitDetectorError(f"{STEP} {model}: {python} ran past {FIT_TIMEOUT_S} s") from None
    for line in done.stderr.splitlines():
        print(f"[{STEP}] {model}: serving env: {line}", file=sys.stderr, flush=True)
    if done.returncode != 0:
        raise FitDetectorError(
            f"{STEP} {model}: monitoring.detectors.fit exited {done.returncode}: {_last_line(done.stderr)}"
        )
    return detector_dir


def fit_arguments(model: str, training_set: Path, detector_dir: Path) -> list[str]:
    return [
        "--model",
        model,
        "--training-set",
        str(Path(training_set).resolve()),
        "--version",
        CANDIDATE_VERSION,
        "--out",
        str(Path(detector_dir).resolve()),
        "--spec-dir",
        str(spec_directory().resolve()),
    ]


def stamp_version(source_dir: Path, dest_dir: Path, version: str) -> Path:
    """Copy the bundle in `source_dir` to `dest_dir` with `version` in its manifest (register calls this
    once the registry has numbered the model; the alibi-detect files do not record the version)."""
    manifest = read_manifest(Path(source_dir))
    dest_dir = Path(dest_dir)
    shutil.copytree(source_dir, dest_dir, dirs_exist_ok=True)
    manifest["version"] = str(version)
    (dest_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return dest_dir


def summarize(manifest: dict[str, Any], where: str) -> dict[str, Any]:
    """What the KFP UI shows on the detector artifact."""
    return {
        "kind": manifest["kind"],
        "version": manifest["version"],
        "features": list(manifest["features"]),
        "reference_rows": manifest.get("reference_rows"),
        "fitted": where,
    }


def _serving_environment() -> dict[str, str]:
    # The serving venv has none of this repo installed: put the repo first on its import path.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def _log(model: str, message: str) -> None:
    print(f"[{STEP}] {model}: {message}", flush=True)
