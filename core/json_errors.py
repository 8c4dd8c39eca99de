"""One error shape for every FastAPI app of the platform (router, drift service, retrain trigger, the
transformer): `{"error": "<one line>"}`, the Open Inference Protocol's, also for what FastAPI answers on its
own: an unknown path (404) or method (405), and a malformed query or body parameter, which FastAPI answers
422 with a list of dicts; here it is a 400 naming the first bad parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the types: core does not import web frameworks at run time
    from fastapi import FastAPI


def validation_message(errors: list[dict[str, Any]]) -> str:
    """`query 'limit': Input should be less than or equal to 100000` for FastAPI's first error (the value
    the client sent is not echoed: it may be long, or a secret sent in the wrong place)."""
    if not errors:
        return "malformed request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = " ".join(str(first.get("msg", "invalid")).split())
    return f"{where or 'request'}: {message}{more}"


def install_json_errors(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def http_error(_request: Any, exc: HTTPException) -> JSONResponse:
        detail = " ".join(str(exc.detail).split())
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(_request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": validation_message(list(exc.errors()))}, status_code=400)

    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
