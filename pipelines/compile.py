"""Compile every pipeline: the IR YAML the KFP UI and API take (`pipelines/compiled/`), and the
Kubernetes `Pipeline` + `PipelineVersion` objects (KFP's Kubernetes-native API) that GitOps applies
(`manifests/pipelines/`, a kustomize base).

    python -m pipelines.compile [--check]

`--check` compiles into a temporary folder and fails if the committed files differ (stale).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from core.images import VERSION
from core.paths import REPO_ROOT

COMPILED_DIR = REPO_ROOT / "pipelines" / "compiled"
MANIFEST_DIR = REPO_ROOT / "manifests" / "pipelines"


def _pipelines() -> dict:
    from pipelines.training import PIPELINE_NAME, training_pipeline

    return {PIPELINE_NAME: training_pipeline}


def compile_all(ir_dir: Path = COMPILED_DIR, manifest_dir: Path = MANIFEST_DIR) -> list[Path]:
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    ir_dir.mkdir(parents=True, exist_ok=True)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in _pipelines().items():
        ir_path = ir_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(ir_path))
        k8s_path = manifest_dir / f"{name}.k8s.yaml"
        options = KubernetesManifestOptions(
            pipeline_name=name,
            pipeline_version_name=f"{name}-v{VERSION.replace('.', '-')}",
            include_pipeline_manifest=True,
        )
        compiler.Compiler().compile(
            pipeline, str(k8s_path), kubernetes_manifest_options=options, kubernetes_manifest_format=True
        )
        written += [ir_path, k8s_path]
    return written


def stale_files() -> list[str]:
    """Committed compiled files that differ from a fresh compile (or are missing)."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = compile_all(Path(scratch) / "ir", Path(scratch) / "k8s")
        committed = {
            path.name: (COMPILED_DIR if path.parent.name == "ir" else MANIFEST_DIR) / path.name
            for path in fresh
        }
        return [
            str(committed[path.name].relative_to(REPO_ROOT))
            for path in fresh
            if not committed[path.name].exists() or not filecmp.cmp(path, committed[path.name], shallow=False)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale compiled pipelines: {', '.join(stale)}; run `make compile`", file=sys.stderr)
            return 1
        print("compiled pipelines are up to date")
        return 0
    for path in compile_all():
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
