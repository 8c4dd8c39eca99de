"""Model-spec validation errors as one-line messages: `spec_error` turns pydantic's first error into a
`SpecError` `<source>: <dotted.field>: <problem>` (plus how many more there were), naming the allowed
fields for an unknown one and the sub-field a cross-field validator blamed. `model` is the root model
the error paths start from (`ModelSpec`, passed in by `core.spec.model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

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
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field else None
        elif get_origin(tp) is not None and get_args(tp):
            tp = get_args(tp)[-1] if isinstance(part, str) else get_args(tp)[0]  # mapping value / item
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


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
