"""Reading a model spec file as YAML, strictly: `read_yaml` rejects duplicate keys and reads `1e-3` as a
float (as YAML 1.2 does), and turns unreadable files and YAML syntax errors into a `SpecError` naming the
file (with line and column). Used by `core.spec.model`'s loaders; nothing here knows the
spec's fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from core.errors import SpecError


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads `1e-3` as a float, as YAML 1.2 does."""


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first set on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: Path) -> Any:
    """The parsed YAML document of a spec file; any read or syntax problem is a `SpecError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, f"cannot read the file: {exc}") from exc
    try:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(path, f"invalid YAML: {where}{exc.problem or exc.context}") from exc
    except (yaml.YAMLError, ValueError) as exc:  # e.g. a date like 2024-02-30
        raise SpecError(path, f"invalid YAML: {exc}") from exc
