"""Compile every pipeline: the IR YAML the KFP UI and API take, and the Kubernetes `Pipeline` +
`PipelineVersion` objects (KFP's Kubernetes-native API) that GitOps applies.

    python -m pipelines.compile [--out pipelines/compiled] [--check]

`--check` compiles into a temporary folder and fails if the committed files differ (stale).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from components.common.images import VERSION
from components.common.paths import REPO_ROOT

COMPILED_DIR = REPO_ROOT / "pipelines" / "compiled"


def _pipelines() -> dict:
    from pipelines.training import PIPELINE_NAME, training_pipeline

    return {PIPELINE_NAME: training_pipeline}


def compile_all(out_dir: Path) -> list[Path]:
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in _pipelines().items():
        ir_path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(ir_path))
        k8s_path = out_dir / f"{name}.k8s.yaml"
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


def stale_files(committed_dir: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = compile_all(Path(scratch))
        return [
            path.name
            for path in fresh
            if not (committed_dir / path.name).exists()
            or not filecmp.cmp(path, committed_dir / path.name, shallow=False)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=COMPILED_DIR, help="folder for the compiled files")
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        if stale:
            print(
                f"stale compiled pipelines in {args.out}: {', '.join(stale)}; run `make compile`",
                file=sys.stderr,
            )
            return 1
        print(f"compiled pipelines in {args.out} are up to date")
        return 0
    for path in compile_all(args.out):
        print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
