"""Model-spec validation errors as one-line messages: `spec_error` turns pydantic's first error into a
`SpecError` `<source>: <dotted.field>: <problem>` (plus how many more there were), naming the allowed
fields for an unknown one and the sub-field a cross-field validator blamed. `model` is the root model
the error paths start from (`ModelSpec`, passed in by `core.spec.model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from core.errors import SpecError
from core.spec.base import FieldProblem

_NO_GOT = {"missing", "extra_forbidden", "value_error", "assertion_error"}


def spec_error(exc: ValidationError, source: str | PathLike[str], model: type[BaseModel]) -> SpecError:
    """The first pydantic error as `<source>: <dotted.path>: <problem>`, plus how many more there were."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc: list[str | int] = list(first["loc"])
    problem = _describe(first, loc, model)
    loc = _without_tags(model, loc)
    if len(errors) > 1:
        problem += f" (+{len(errors) - 1} more)"
    return SpecError(source, problem, field=".".join(map(str, loc)) or None)


def _describe(error: ErrorDetails, loc: list[str | int], model: type[BaseModel]) -> str:
    """A readable problem for one pydantic error; may extend `loc` (sub-field blamed by a validator)."""
    kind, message, value = error["type"], error["msg"], error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        loc.extend(cause.loc)
        return str(cause)
    if loc and loc[-1] == "[key]":
        loc.pop()
        return f"invalid key: {message}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
        tags = ", ".join(_tags(_unwrap(_walk(model, loc))))
        loc.append(field)
        if kind == "union_tag_not_found":
            return f"required field is missing (one of: {tags})"
        return f"unknown {field} {error['ctx']['tag']!r} (allowed: {tags})"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    message = message.removeprefix("Value error, ")
    if kind not in _NO_GOT and isinstance(value, str | int | float | bool):
        shown = repr(value)
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return message


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names of the model found at `loc` inside `model` (empty when it is not a model)."""
    tp = _unwrap(_walk(model, loc))
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _walk(model: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The type found at `loc` inside `model` (None when the path leaves the declared types)."""
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
    return tp


def _step(tp: Any, part: str | int) -> Any:
    tp = _unwrap(tp)
    member = _tags(tp).get(part) if isinstance(part, str) else None
    if member is not None:
        return member
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field else None
    if get_origin(tp) is not None and get_args(tp):
        return get_args(tp)[-1] if isinstance(part, str) else get_args(tp)[0]  # mapping value / item
    return None


def _without_tags(model: type[BaseModel], loc: Sequence[str | int]) -> list[str | int]:
    """`loc` without the tags pydantic puts below a tagged union (`behaviour.0.invariance.feature` ->
    `behaviour.0.feature`): a tag is a value the user wrote, not a field they could find."""
    clean: list[str | int] = []
    tp: Any = model
    for part in loc:
        if not (isinstance(part, str) and part in _tags(_unwrap(tp))):
            clean.append(part)
        tp = _step(tp, part)
    return clean


def _tags(tp: Any) -> dict[str, type[BaseModel]]:
    """Tag -> member of a tagged union of models (members marked by a one-value Literal field)."""
    if get_origin(tp) not in (Union, UnionType):
        return {}
    members = {}
    for member in get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field in member.model_fields.values():
                values = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
                if len(values) == 1 and isinstance(values[0], str):
                    members[values[0]] = member
    return members


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `X | None` down to X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
