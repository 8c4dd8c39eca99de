"""The Dockerfiles build every project image that the manifests and the compiled pipeline run.

No container engine runs here, so the Dockerfiles are checked as text: pinned bases, multi-stage builds,
a numeric non-root user matching the manifests, installs from the lock files, and image names that all
come from core/images.py.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from core import images
from core.code_digest import image_input_files
from manifests.validate import render

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
COMPILED_PIPELINE = ROOT / "pipelines" / "compiled" / "training-pipeline.yaml"
IMAGES_COMPONENT = ROOT / "kustomize" / "components" / "images" / "kustomization.yaml"
# Image family (the repository part after REGISTRY) -> the Dockerfile and the target that builds it.
FAMILY_TARGETS = {
    "platform": ("components/Dockerfile", "platform"),
    "training": ("components/Dockerfile", "training"),
    "serving": ("inference/Dockerfile", "serving"),
}
DOCKERFILE_LOCKS = {"components/Dockerfile": "platform.lock", "inference/Dockerfile": "serving.lock"}
# pipelines/models: the specs reach pods as a ConfigMap, so a spec change is no new image.
DOCKERIGNORE_MUST_EXCLUDE = (".venv*", ".local", "build", "**/node_modules", "pipelines/models")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with `\\` continuations joined and comments dropped."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        if logical.strip():
            keyword, _, args = logical.strip().partition(" ")
            yield keyword.upper(), args.strip()
        logical = ""


def parse_stages(path: Path) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in instructions(path.read_text()):
        if keyword == "FROM":
            words = args.split()
            base = next(word for word in words if not word.startswith("--"))
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(base=base, name=name)
        elif current is not None:
            current.instructions.append((keyword, args))
    return stages


def chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target stage and the stages it is built FROM, root first."""
    result = [stages[target]]
    while result[0].base in stages:
        result.insert(0, stages[result[0].base])
    return result


def dependencies(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and every stage it is built FROM or copies from, recursively."""
    stage = stages[target]
    sources = [stage.base] + [
        match.group(1)
        for keyword, args in stage.instructions
        if keyword == "COPY" and (match := re.search(r"--from=(\S+)", args))
    ]
    found = [stage]
    for source in sources:
        if source in stages:
            found += [dep for dep in dependencies(stages, source) if dep not in found]
    return found


def effective(stages: dict[str, Stage], target: str, keyword: str) -> list[str]:
    return [args for stage in chain(stages, target) for kw, args in stage.instructions if kw == keyword]


def env_vars(stages: dict[str, Stage], target: str) -> dict[str, str]:
    pairs = [word.split("=", 1) for args in effective(stages, target, "ENV") for word in shlex.split(args)]
    return dict(pairs)


def is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.split(":", 1)[1] not in ("", "latest")


def external_images(stages: dict[str, Stage]) -> list[str]:
    """Base images and `COPY --from=<image>` sources that are not stages of the same Dockerfile."""
    found = [stage.base for stage in stages.values()]
    for stage in stages.values():
        for keyword, args in stage.instructions:
            match = re.search(r"--from=(\S+)", args) if keyword == "COPY" else None
            if match:
                found.append(match.group(1))
    return [image for image in found if image not in stages]


def walk_images(node: object) -> Iterator[str]:
    """Every string under an `image` key, at any depth (Pipeline objects embed whole pipeline specs)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from walk_images(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_images(item)


def kustomizations() -> list[Path]:
    paths = [
        *(ROOT / "manifests").rglob("kustomization.yaml"),
        *(ROOT / "kustomize").rglob("kustomization.yaml"),
    ]
    return [path for path in paths if "node_modules" not in path.parts]


@pytest.fixture(scope="module")
def dockerfiles() -> dict[str, dict[str, Stage]]:
    return {relative: parse_stages(ROOT / relative) for relative in DOCKERFILE_LOCKS}


@pytest.fixture(scope="module")
def rendered_objects() -> list[dict]:
    """The overlays' objects, without the earlier PipelineVersions: those keep the images (and tags) of
    the code they were compiled from, for the runs and schedules that still reference them."""
    current = {
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all(
            (ROOT / "manifests" / "pipelines" / "training-pipeline.k8s.yaml").read_text()
        )
        if doc and doc["kind"] == "PipelineVersion"
    }
    return [
        obj
        for env in ENVS
        for obj in render(ROOT / "kustomize" / "overlays" / env)
        if obj["kind"] != "PipelineVersion" or obj["metadata"]["name"] in current
    ]


@pytest.fixture(scope="module")
def project_images(rendered_objects: list[dict]) -> set[str]:
    """Every image from REGISTRY that the overlays or the compiled training pipeline run."""
    compiled = list(yaml.safe_load_all(COMPILED_PIPELINE.read_text()))
    referenced = set(walk_images(rendered_objects)) | set(walk_images(compiled))
    return {image for image in referenced if image.startswith(images.REGISTRY + "/")}


def test_the_parser_sees_stages_continuations_and_user(tmp_path: Path) -> None:
    text = "FROM a:1 AS one\n# note\nRUN x \\\n  && y\nFROM one AS two\nUSER 10001\n"
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    stages = parse_stages(path)
    assert list(stages) == ["one", "two"]
    assert stages["one"].instructions == [("RUN", "x    && y")]
    assert [stage.name for stage in chain(stages, "two")] == ["one", "two"]
    assert effective(stages, "two", "USER") == ["10001"]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("python:3.11.7-slim-bookworm", True),
        ("ghcr.io/astral-sh/uv:0.13.9", True),
        ("python@sha256:" + "a" * 64, True),
        ("python", False),
        ("python:latest", False),
        ("localhost:5000/python", False),
    ],
)
def test_pinning_rule(image: str, pinned: bool) -> None:
    assert is_pinned(image) is pinned


def test_every_external_image_is_pinned(dockerfiles: dict[str, dict[str, Stage]]) -> None:
    for relative, stages in dockerfiles.items():
        unpinned = [image for image in external_images(stages) if not is_pinned(image)]
        assert not unpinned, f"{relative}: unpinned images {unpinned}"
        steps = " ".join(args for stage in stages.values() for _, args in stage.instructions)
        assert ":latest" not in steps, f"{relative}: uses a latest tag"


def test_dockerfiles_are_multi_stage(dockerfiles: dict[str, dict[str, Stage]]) -> None:
    for relative, stages in dockerfiles.items():
        assert len(stages) >= 2, f"{relative}: one stage only"


@pytest.mark.parametrize("family", sorted(FAMILY_TARGETS))
def test_target_runs_as_the_manifests_numeric_non_root_user(
    family: str, dockerfiles: dict[str, dict[str, Stage]], rendered_objects: list[dict]
) -> None:
    relative, target = FAMILY_TARGETS[family]
    users = effective(dockerfiles[relative], target, "USER")
    assert users, f"{relative} target {target}: no USER"
    assert users[-1].isdigit() and int(users[-1]) != 0, f"{relative} target {target}: USER {users[-1]}"
    manifest_uids = project_run_as_users(rendered_objects)
    assert manifest_uids == {int(users[-1])}, f"manifests run as {manifest_uids}, {relative} as {users[-1]}"


def project_run_as_users(objects: list[dict]) -> set[object]:
    """runAsUser of the objects that run a project image (Triton's ServingRuntime keeps its own UID)."""
    project = [obj for obj in objects if any(i.startswith(images.REGISTRY + "/") for i in walk_images(obj))]
    return set(walk_values(project, "runAsUser"))


def walk_values(node: object, wanted: str) -> Iterator[object]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from [value] if key == wanted else walk_values(value, wanted)
    elif isinstance(node, list):
        for item in node:
            yield from walk_values(item, wanted)


@pytest.mark.parametrize("family", sorted(FAMILY_TARGETS))
def test_target_runtime_settings(family: str, dockerfiles: dict[str, dict[str, Stage]]) -> None:
    relative, target = FAMILY_TARGETS[family]
    stages = dockerfiles[relative]
    env = env_vars(stages, target)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1", relative
    assert env.get("PATH", "").startswith("/opt/venv/bin:"), f"{relative} {target}: venv not first on PATH"
    assert effective(stages, target, "WORKDIR")[-1] == "/app", relative
    copies = stages[target].instructions
    venv_copies = [args for kw, args in copies if kw == "COPY" and "/opt/venv" in args]
    assert len(venv_copies) == 1 and "--from=" in venv_copies[0], f"{relative} {target}: copy the venv"
    code_copies = [args for kw, args in copies if kw == "COPY" and "--from=" not in args]
    assert code_copies and all("--chown=" in args for args in code_copies), f"{relative} {target}"
    copied = {args.split()[-2] for args in code_copies}
    # core/ is the ground floor every other folder imports: an image without it cannot run any entry point.
    assert {"core", "components"} <= copied, f"{relative} {target}: copies {sorted(copied)}, not core/"


@pytest.mark.parametrize("relative", sorted(DOCKERFILE_LOCKS))
def test_copied_sources_exist(relative: str, dockerfiles: dict[str, dict[str, Stage]]) -> None:
    for stage in dockerfiles[relative].values():
        for keyword, args in stage.instructions:
            if keyword == "COPY" and "--from=" not in args:
                sources = [word for word in args.split()[:-1] if not word.startswith("--")]
                missing = [source for source in sources if not (ROOT / source).exists()]
                assert not missing, f"{relative} stage {stage.name}: COPY of missing {missing}"


@pytest.mark.parametrize("relative", sorted(DOCKERFILE_LOCKS))
def test_installs_from_its_lock_file(relative: str, dockerfiles: dict[str, dict[str, Stage]]) -> None:
    lock = DOCKERFILE_LOCKS[relative]
    steps = [(kw, args) for stage in dockerfiles[relative].values() for kw, args in stage.instructions]
    assert any(kw == "COPY" and args.split()[0] == lock for kw, args in steps), (
        f"{relative}: {lock} not copied"
    )
    runs = " ".join(args for kw, args in steps if kw == "RUN")
    assert "uv pip sync" in runs and lock in runs, f"{relative}: does not sync {lock}"
    # The locks are compiled without hashes; once they carry them, the install must enforce them.
    if "--hash=" in (ROOT / lock).read_text():
        assert "--require-hashes" in runs, f"{relative}: {lock} has hashes, add --require-hashes"


def test_training_differs_from_platform(dockerfiles: dict[str, dict[str, Stage]]) -> None:
    stages = dockerfiles["components/Dockerfile"]
    runs = " ".join(
        args for stage in dependencies(stages, "training") for kw, args in stage.instructions if kw == "RUN"
    )
    assert "TORCH_CUDA" in runs and "--reinstall-package torch" in runs
    platform_runs = [args for stage in dependencies(stages, "platform") for _, args in stage.instructions]
    assert not any("TORCH_CUDA" in args for args in platform_runs)


def test_the_project_images_are_found(project_images: set[str]) -> None:
    # Guards the next test against passing on nothing: these three are in the pipeline today.
    assert {images.PLATFORM_IMAGE, images.TRAINING_IMAGE, images.SERVING_IMAGE} <= project_images


def test_every_project_image_is_named_in_images_py_and_built(
    project_images: set[str], dockerfiles: dict[str, dict[str, Stage]]
) -> None:
    named = {images.PLATFORM_IMAGE, images.TRAINING_IMAGE, images.SERVING_IMAGE}
    assert project_images <= named, f"not in images.py: {sorted(project_images - named)}"
    for image in project_images:
        family = image.removeprefix(images.REGISTRY + "/").split(":")[0]
        assert family in FAMILY_TARGETS, f"{image}: no Dockerfile target for family {family}"
        relative, target = FAMILY_TARGETS[family]
        assert target in dockerfiles[relative], f"{image}: {relative} has no stage {target}"


def test_one_images_block_pins_every_image_as_images_py_names_it() -> None:
    """Only kustomize/components/images pins images (every overlay includes it), exactly images.py's."""
    pinning = [path for path in kustomizations() if (yaml.safe_load(path.read_text()) or {}).get("images")]
    assert pinning == [IMAGES_COMPONENT], f"images: blocks outside the images component: {pinning}"
    entries = yaml.safe_load(IMAGES_COMPONENT.read_text())["images"]
    assert all(set(entry) == {"name", "newTag"} for entry in entries), "newName/digest bypass images.py"
    assert {f"{e['name']}:{e['newTag']}" for e in entries} == {
        *images.PROJECT_IMAGES,
        *images.THIRD_PARTY_IMAGES,
    }
    for env in ENVS:
        overlay = yaml.safe_load((ROOT / "kustomize" / "overlays" / env / "kustomization.yaml").read_text())
        assert "../../components/images" in overlay.get("components", []), f"{env}: not pinned"


def test_the_project_tag_carries_the_digest_of_the_code_the_images_are_built_from(tmp_path: Path) -> None:
    from core.code_digest import code_digest

    assert f"{images.RELEASE}-{code_digest()}" == images.TAG, "stale core/image_tag.py: run `make compile`"
    for entry in ("core", "components", "inference", "pipelines", "platform.lock"):  # what the images copy
        assert any(f.relative_to(ROOT).as_posix().startswith(entry) for f in image_input_files()), entry
    # A changed byte of code is a new tag; a generated file (which embeds the tag) is not an input.
    copy = tmp_path / "repo"
    for path in image_input_files():
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert code_digest(copy) == code_digest()
    (copy / "pipelines" / "compiled").mkdir(parents=True, exist_ok=True)
    (copy / "pipelines" / "compiled" / "training-pipeline.yaml").write_text("generated")
    assert code_digest(copy) == code_digest()
    with (copy / "core" / "paths.py").open("a") as handle:
        handle.write("\n# changed\n")
    assert code_digest(copy) != code_digest()


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    missing = [pattern for pattern in DOCKERIGNORE_MUST_EXCLUDE if pattern not in patterns]
    assert not missing, f".dockerignore: missing {missing}"


# Third-party images the overlays run (images.py pins them too); docs/cluster.md flags them as not verified
# against their registry from this machine.
THIRD_PARTY_IMAGES = set(images.THIRD_PARTY_IMAGES)


def rendered_images(objects: list[dict]) -> set[str]:
    found = set()
    for obj in objects:
        text = yaml.safe_dump(obj)
        found.update(re.findall(r"^\s*(?:- )?image: (\S+)$", text, flags=re.MULTILINE))
    return found


@pytest.mark.parametrize("env", ENVS)
def test_every_rendered_image_is_a_project_or_a_listed_third_party_image(env: str, rendered_objects) -> None:
    found = rendered_images(
        [o for o in rendered_objects if o["metadata"].get("namespace") == "mlops" and _instance(o) == env]
    )
    named = {images.PLATFORM_IMAGE, images.TRAINING_IMAGE, images.SERVING_IMAGE} | THIRD_PARTY_IMAGES
    assert found - named == set(), "add the image to images.py or THIRD_PARTY_IMAGES (and docs/cluster.md)"
    assert found >= THIRD_PARTY_IMAGES, "a listed third-party image is no longer used"


def test_cluster_docs_flag_every_image_not_verified_against_a_registry() -> None:
    section = (ROOT / "docs" / "cluster.md").read_text()
    flagged = section.split("Not verified against a registry", 1)[1].split("\n\n", 1)[0]
    for image in THIRD_PARTY_IMAGES:
        assert f"`{image}`" in flagged, image
    assert f"/{{platform,training,serving}}:{images.RELEASE}-<code digest>" in flagged


def _instance(obj: dict) -> str:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/instance", "").removeprefix("mlops-")
