"""Compile every pipeline: the IR YAML the KFP UI and API take (`pipelines/compiled/`), and the
Kubernetes `Pipeline` + `PipelineVersion` objects (KFP's Kubernetes-native API) that GitOps applies
(`manifests/pipelines/`, a kustomize base), and the ConfigMap of the steps' runtime configuration
(`manifests/platform-config/`, core/runtime_config.py), and the one `images:` block every overlay uses
(`kustomize/components/images/`, from core/images.py).

The image tag carries the digest of the code (core/code_digest.py), and the compiled pipeline carries the
image names: `main` writes `core/image_tag.py` first, before anything imports core.images.

    python -m pipelines.compile [--check]

The PipelineVersion is named after a hash of the compiled IR (core/pipeline_version.py): KFP versions are
immutable, so a changed pipeline is a new version. The version the previous compile wrote moves to
`manifests/pipelines/previous/` and stays deployed (runs and schedules may still reference it) until
someone deletes its file there. `--check` compiles into a temporary folder and fails if the committed
current files differ (stale).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import yaml

from core.code_digest import TAG_FILE, code_digest, tag_file_text
from core.paths import REPO_ROOT
from core.pipeline_version import pipeline_version_name
from core.runtime_config import MANIFEST as CONFIG_MAP_MANIFEST
from core.runtime_config import SPECS_MANIFEST, cluster_manifest, specs_manifest

IMAGES_COMPONENT = REPO_ROOT / "kustomize" / "components" / "images" / "kustomization.yaml"
COMPILED_DIR = REPO_ROOT / "pipelines" / "compiled"
MANIFEST_DIR = REPO_ROOT / "manifests" / "pipelines"
PREVIOUS = "previous"


def _pipelines() -> dict:
    from pipelines.training import PIPELINE_NAME, training_pipeline

    return {PIPELINE_NAME: training_pipeline}


def compile_all(
    ir_dir: Path = COMPILED_DIR, manifest_dir: Path = MANIFEST_DIR, pipelines: dict | None = None
) -> list[Path]:
    """Compile `pipelines` (name -> pipeline; default: the project's) into the two folders."""
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    ir_dir.mkdir(parents=True, exist_ok=True)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in (pipelines or _pipelines()).items():
        ir_path = ir_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(ir_path))
        k8s_path = manifest_dir / f"{name}.k8s.yaml"
        version = pipeline_version_name(name, ir_path)
        keep_previous_version(k8s_path, version, manifest_dir / PREVIOUS)
        options = KubernetesManifestOptions(
            pipeline_name=name, pipeline_version_name=version, include_pipeline_manifest=True
        )
        compiler.Compiler().compile(
            pipeline, str(k8s_path), kubernetes_manifest_options=options, kubernetes_manifest_format=True
        )
        written += [ir_path, k8s_path]
    write_previous_kustomization(manifest_dir / PREVIOUS)
    return written


def keep_previous_version(k8s_path: Path, new_version: str, previous_dir: Path) -> None:
    """Move the PipelineVersion `k8s_path` holds into `previous_dir` when a compile names a new one."""
    if not k8s_path.is_file():
        return
    for document in yaml.safe_load_all(k8s_path.read_text()):
        if document and document.get("kind") == "PipelineVersion":
            name = document["metadata"]["name"]
            if name != new_version:
                previous_dir.mkdir(parents=True, exist_ok=True)
                (previous_dir / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def write_previous_kustomization(previous_dir: Path) -> None:
    """The kustomization that keeps every earlier PipelineVersion deployed (none: an empty one)."""
    previous_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(p.name for p in previous_dir.glob("*.yaml") if p.name != "kustomization.yaml")
    header = (
        "# Earlier PipelineVersions, still deployed for the runs and schedules that reference them. Written\n"
        "# by `make compile` (pipelines/compile.py); delete a version's file once nothing uses it.\n"
    )
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files}
    (previous_dir / "kustomization.yaml").write_text(header + yaml.safe_dump(body, sort_keys=False))


def images_component() -> str:
    """The kustomize Component pinning every image the overlays run, from core/images.py."""
    from core import images

    entries = []
    for image in (*images.PROJECT_IMAGES, *images.THIRD_PARTY_IMAGES):
        name, tag = image.rsplit(":", 1)
        entries.append({"name": name, "newTag": tag})
    header = (
        "# The one `images:` block of every overlay, written by `make compile` from core/images.py (the\n"
        "# project's tags carry the digest of their code). Do not edit; a test fails when it is stale.\n"
    )
    body = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "images": entries}
    return header + yaml.safe_dump(body, sort_keys=False)


def generated_files() -> list[tuple[Path, str]]:
    """The files `make compile` writes besides the pipelines, with their content as of now: the runtime
    ConfigMap, the specs ConfigMap and the images Component."""
    return [
        (CONFIG_MAP_MANIFEST, cluster_manifest()),
        (SPECS_MANIFEST, specs_manifest()),
        (IMAGES_COMPONENT, images_component()),
    ]


def stale_files() -> list[str]:
    """Committed compiled files that differ from a fresh compile (or are missing). The tag file first: the
    pipelines compiled here embed the committed tag."""
    if TAG_FILE.read_text() != tag_file_text(code_digest()):
        return [str(TAG_FILE.relative_to(REPO_ROOT))]
    with tempfile.TemporaryDirectory() as scratch:
        fresh = compile_all(Path(scratch) / "ir", Path(scratch) / "k8s")
        committed = {
            path.name: (COMPILED_DIR if path.parent.name == "ir" else MANIFEST_DIR) / path.name
            for path in fresh
        }
        stale = [
            str(committed[path.name].relative_to(REPO_ROOT))
            for path in fresh
            if not committed[path.name].exists() or not filecmp.cmp(path, committed[path.name], shallow=False)
        ]
    for path, text in generated_files():
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path.relative_to(REPO_ROOT)))
    return stale


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
    TAG_FILE.write_text(tag_file_text(code_digest()))  # first: the pipelines embed the images' tag
    written = [TAG_FILE, *compile_all()]
    for path, text in generated_files():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    for path in written:
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
