"""JSON from clients: every way a body can fail to be a usable document becomes one `UntrustedJsonError` with
a one-line message, so each service answers it with a 4xx instead of a 500.

`json.loads` alone lets three through: deep nesting (`[[[[...` raises RecursionError), bytes that are not
UTF-8 (UnicodeDecodeError) and lone surrogates (`"\\ud800"` decodes to a Python string that cannot be
encoded again, so it fails later, wherever the text is stored, logged or sent on). The surrogate walk runs
only when the raw text holds a surrogate escape, so ordinary bodies pay one regular-expression scan.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class UntrustedJsonError(ValueError):
    """A client's JSON that cannot be used; `str()` is one line naming `what` was being read."""


def loads_untrusted(data: bytes | str, what: str) -> Any:
    """`data` decoded as JSON, or UntrustedJsonError naming `what` (e.g. "request body")."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        document = json.loads(raw)
    except UnicodeDecodeError:
        raise UntrustedJsonError(f"{what}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise UntrustedJsonError(f"{what}: not valid JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise UntrustedJsonError(f"{what}: JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(document):
        raise UntrustedJsonError(f"{what}: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return document


def _has_lone_surrogate(document: Any) -> bool:
    stack = [document]
    while stack:  # iterative: the document may be as deep as the recursion limit allowed
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
