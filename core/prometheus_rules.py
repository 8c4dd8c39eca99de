"""Write the rule groups of every PrometheusRule object as plain Prometheus rule files.

The rules live once, as PrometheusRule objects under `manifests/monitoring/`; a plain Prometheus (local
mode) and promtool read rule files, which are exactly such an object's `spec` (`groups: [...]`):

    python -m core.prometheus_rules --out DIR [--source manifests/monitoring]

writes `DIR/<metadata.name>.rules.yaml` per object and prints the paths.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from core.paths import REPO_ROOT

DEFAULT_SOURCE = REPO_ROOT / "manifests" / "monitoring"
RULE_FILE_SUFFIX = ".rules.yaml"
KIND = "PrometheusRule"
API_GROUP = "monitoring.coreos.com/"


class ExtractError(ValueError):
    """A source that holds no usable PrometheusRule; the message names the file."""


def manifest_files(source: Path) -> list[Path]:
    """The YAML files in `source` (a file, or a folder searched recursively), sorted."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ExtractError(f"{source}: no such file or folder")
    return sorted(p for pattern in ("*.yaml", "*.yml") for p in source.rglob(pattern) if p.is_file())


def _documents(path: Path) -> Iterator[Any]:
    try:
        yield from yaml.safe_load_all(path.read_text())
    except yaml.YAMLError as error:
        raise ExtractError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error


def _is_prometheus_rule(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("kind") == KIND
        and str(document.get("apiVersion", "")).startswith(API_GROUP)
    )


def find_prometheus_rules(source: str | Path = DEFAULT_SOURCE) -> dict[str, dict[str, Any]]:
    """Every PrometheusRule's `spec` under `source`, by `metadata.name` (unique, or `ExtractError`)."""
    found: dict[str, dict[str, Any]] = {}
    for path in manifest_files(Path(source)):
        for document in _documents(path):
            if not _is_prometheus_rule(document):
                continue
            name = (document.get("metadata") or {}).get("name")
            spec = document.get("spec")
            if not name:
                raise ExtractError(f"{path}: a {KIND} has no metadata.name")
            if name in found:
                raise ExtractError(f"{path}: {KIND} {name!r} is defined twice")
            if not isinstance(spec, dict) or not isinstance(spec.get("groups"), list):
                raise ExtractError(f"{path}: {KIND} {name!r} has no spec.groups list")
            found[name] = spec
    if not found:
        raise ExtractError(f"{source}: no {KIND} ({API_GROUP}*) object found")
    return found


class _RulesDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL, descriptions) as `|` blocks so the output stays readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RulesDumper.add_representer(str, _represent_str)


def rules_file_text(spec: dict[str, Any]) -> str:
    """A Prometheus rule file: the object's groups and nothing else."""
    return yaml.dump(
        {"groups": spec["groups"]}, Dumper=_RulesDumper, sort_keys=False, width=1000, allow_unicode=True
    )


def extract(source: str | Path, out_dir: str | Path) -> list[Path]:
    """Write one `<name>.rules.yaml` per PrometheusRule under `source` into `out_dir`; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in sorted(find_prometheus_rules(source).items()):
        path = out / f"{name}{RULE_FILE_SUFFIX}"
        path.write_text(rules_file_text(spec))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.prometheus_rules", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the <name>.rules.yaml files")
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="a manifest file or folder holding PrometheusRule objects (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        paths = extract(args.source, args.out)
    except ExtractError as error:
        print(f"extract: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
